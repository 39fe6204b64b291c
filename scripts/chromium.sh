# Sourced by scripts/test.sh: the dashboard's browser test drives Debian's
# Chromium (never a downloaded browser).

ensure_chromium() {
	command -v chromium >/dev/null 2>&1 && return 0
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "installing Chromium from Debian's packages for the browser test" >&2
		{ DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium ||
			{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }; } >&2
	elif [ "${CI:-}" = true ]; then
		echo "CI needs Chromium for the browser test: install Debian's chromium package" >&2
		return 1
	else
		echo "no chromium on PATH: the browser test will be skipped" >&2
	fi
}
