# Sourced by the other scripts: make sure a PostgreSQL server answers on
# 127.0.0.1:5432 with trust auth for user postgres, starting the local cluster
# if it is down. Returns non-zero when that is not possible (then callers fall
# back to a throwaway cluster from pg_virtualenv).

pg_answers() {
	# A trust login as postgres, not just an open port.
	if command -v psql >/dev/null 2>&1; then
		PGCONNECT_TIMEOUT=3 psql -X -q -h 127.0.0.1 -p 5432 -U postgres -d postgres -w -c 'SELECT 1' >/dev/null 2>&1
	else
		(exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null
	fi
}

ensure_postgres() {
	pg_answers && return 0
	if command -v pg_lsclusters >/dev/null 2>&1; then
		local ver name
		read -r ver name _ < <(pg_lsclusters --no-header 2>/dev/null | awk '$3 == 5432 { print $1, $2; exit }')
		if [ -n "${ver:-}" ]; then
			echo "starting PostgreSQL cluster $ver/$name" >&2
			pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start >&2 || true
			for _ in $(seq 1 60); do
				pg_answers && return 0
				sleep 0.5
			done
		fi
	fi
	return 1
}

# install_postgres installs Debian's PostgreSQL (for pg_virtualenv) when
# nothing is there at all.
install_postgres() {
	command -v pg_virtualenv >/dev/null 2>&1 && return 0
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "installing PostgreSQL from Debian's packages" >&2
		apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
	else
		echo "no PostgreSQL found: install it, or set TEST_DATABASE_URL" >&2
		return 1
	fi
}
