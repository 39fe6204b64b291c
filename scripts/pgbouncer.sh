# Sourced by scripts/test.sh: the PgBouncer test runs Debian's pgbouncer, in
# transaction mode, in front of the test server (never a downloaded one).

ensure_pgbouncer() {
	command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] && return 0
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "installing PgBouncer from Debian's packages for the pooler test" >&2
		{ DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer ||
			{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer; }; } >&2
	elif [ "${CI:-}" = true ]; then
		echo "CI needs PgBouncer for the pooler test: install Debian's pgbouncer package" >&2
		return 1
	else
		echo "no pgbouncer: the pooler test will be skipped" >&2
	fi
}
