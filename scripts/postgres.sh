# Sourced by the other scripts: make sure a PostgreSQL server answers on
# 127.0.0.1:5432 with trust auth for user postgres, starting the local cluster
# if it is down. Returns non-zero when that is not possible (then callers fall
# back to a throwaway cluster from pg_virtualenv, or to a project-local one).

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
			# A failed start (a cluster already running elsewhere, say in
			# another network namespace) will not answer: do not wait for it.
			pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start >&2 || return 1
			for _ in $(seq 1 60); do
				pg_answers && return 0
				sleep 0.5
			done
		fi
	fi
	return 1
}

# install_postgres installs Debian's PostgreSQL when its server (initdb, for
# a local cluster) or pg_virtualenv (for a throwaway one) is missing: a
# client alone is not enough for either.
install_postgres() {
	command -v pg_virtualenv >/dev/null 2>&1 && pg_bindir >/dev/null && return 0
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "installing PostgreSQL from Debian's packages" >&2
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; } >&2
		pg_bindir >/dev/null
	else
		echo "no PostgreSQL server found: install Debian's postgresql package, or set DATABASE_URL (TEST_DATABASE_URL for the tests)" >&2
		return 1
	fi
}

# pg_bindir prints the newest installed server's bin directory.
pg_bindir() {
	local d
	d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
	[ -n "$d" ] && [ -x "$d/initdb" ] && echo "$d"
}

# as_cluster_owner runs a server command as postgres when we are root
# (initdb and postgres refuse to run as root), else as ourselves.
as_cluster_owner() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# local_cluster DIR PORT makes sure a project-local cluster with its data in
# DIR answers on 127.0.0.1:PORT (trust auth for user postgres, loopback only,
# its socket in DIR), creating it when DIR holds none and starting it when it
# is down. It keeps running afterwards: stop_local_cluster DIR stops it.
local_cluster() {
	local dir=$1 port=$2 bin
	bin=$(pg_bindir) || return 1
	mkdir -p "$dir" && dir=$(cd "$dir" && pwd)
	[ "$(id -u)" = 0 ] && chown postgres: "$dir"
	if [ ! -s "$dir/data/PG_VERSION" ]; then
		echo "creating a PostgreSQL cluster in $dir/data (port $port)" >&2
		as_cluster_owner "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-instructions >"$dir/initdb.log" 2>&1 ||
			{ cat "$dir/initdb.log" >&2; return 1; }
		printf "port = %s\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\n" "$port" "$dir" \
			>>"$dir/data/postgresql.conf"
	fi
	as_cluster_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1 && return 0
	echo "starting the PostgreSQL cluster in $dir/data" >&2
	as_cluster_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start >/dev/null ||
		{ tail -n 20 "$dir/postgres.log" >&2; return 1; }
}

# stop_local_cluster DIR stops the cluster local_cluster started, if it runs.
stop_local_cluster() {
	local dir=$1 bin
	[ -s "$dir/data/PG_VERSION" ] && bin=$(pg_bindir) || { echo "no cluster in $dir" >&2; return 0; }
	as_cluster_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1 || { echo "the cluster in $dir is not running" >&2; return 0; }
	as_cluster_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >&2
}
