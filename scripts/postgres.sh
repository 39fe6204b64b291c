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
		# Only a cluster that is down: one that is online yet does not answer
		# runs where we cannot reach it (another network namespace), and
		# starting it would only say "Cluster is already running".
		read -r ver name _ < <(pg_lsclusters --no-header 2>/dev/null | awk '$3 == 5432 && $4 == "down" { print $1, $2; exit }')
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

# dev_database sets DATABASE_URL for make run and make demo, and says which
# it is: DATABASE_URL if set; else the PostgreSQL on 127.0.0.1:5432, started
# if it is down; else a project-local cluster in $BATON_DEV_DIR (.baton/, on
# port $BATON_DEV_PORT, 54329; only its owner gets in, with the password in
# .baton/pgpass), installing Debian's PostgreSQL first if needed.
dev_database() {
	if [ -n "${DATABASE_URL:-}" ]; then
		echo "Database: the one DATABASE_URL names"
	elif ensure_postgres; then
		export DATABASE_URL="postgres://postgres@127.0.0.1:5432/baton?sslmode=disable"
		echo "Database: $DATABASE_URL"
	else
		local dir=${BATON_DEV_DIR:-.baton} port=${BATON_DEV_PORT:-54329}
		echo "nothing answers on 127.0.0.1:5432: using a project-local PostgreSQL" >&2
		install_postgres && local_cluster "$dir" "$port" || return 1
		export DATABASE_URL=$(cluster_url "$(cd "$dir" && pwd)" "$port")
		echo "Database: $DATABASE_URL (in $dir; it keeps running, make stop stops it)"
		echo "For baton commands in another shell:"
		echo "  export DATABASE_URL='$DATABASE_URL'"
	fi
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

# cluster_home DIR prints where the project-local cluster of DIR keeps its
# data and its socket: DIR itself, unless we are root. The cluster then runs
# as postgres, which cannot reach DIR inside a private (0700) folder, such as
# root's home or a mktemp -d: it gets a folder of postgres's own, named for
# DIR. (A cluster an earlier version made in DIR stays there.)
cluster_home() {
	local dir=$1 key
	if [ "$(id -u)" != 0 ] || [ -s "$dir/data/PG_VERSION" ]; then
		echo "$dir"
		return
	fi
	key=$(printf %s "$dir" | sha256sum | cut -c1-16)
	echo "$(getent passwd postgres | cut -d: -f6)/baton-dev/$key"
}

# cluster_url DIR PORT prints the URL of the project-local cluster's baton
# database. Its password stays in DIR/pgpass (mode 0600), named by the URL's
# passfile, so that neither the URL nor ps shows it.
cluster_url() {
	echo "postgres://postgres@127.0.0.1:$2/baton?sslmode=disable&passfile=$1/pgpass"
}

# local_cluster DIR PORT makes sure a project-local cluster answers on
# 127.0.0.1:PORT, creating it when there is none and starting it when it is
# down. Only its owner gets in: a password (scram-sha-256) on every
# connection, kept in DIR/pgpass, and a socket in a folder only the owner
# can enter (cluster_home). A cluster an earlier version made with trust
# auth gets a password too. It keeps running afterwards: stop_local_cluster
# DIR stops it.
local_cluster() {
	local dir=$1 port=$2 bin home
	bin=$(pg_bindir) || return 1
	mkdir -p "$dir" && dir=$(cd "$dir" && pwd) && chmod 700 "$dir" || return 1
	home=$(cluster_home "$dir")
	if [ "$home" != "$dir" ]; then
		mkdir -p "$home" && chown postgres: "$(dirname "$home")" "$home" && chmod 700 "$(dirname "$home")" "$home" || return 1
	fi
	if [ ! -s "$home/data/PG_VERSION" ]; then
		echo "creating a PostgreSQL cluster in $home/data (port $port)" >&2
		rm -f "$dir/pgpass"
		new_password "$dir" "$port" || return 1
		(umask 077 && cut -d: -f5 "$dir/pgpass" >"$home/pwfile") || return 1
		if [ "$(id -u)" = 0 ]; then chown postgres: "$home/pwfile" || return 1; fi
		as_cluster_owner "$bin/initdb" -D "$home/data" -U postgres -A scram-sha-256 --pwfile="$home/pwfile" -E UTF8 \
			--no-instructions >"$dir/initdb.log" 2>&1
		local rc=$?
		rm -f "$home/pwfile"
		[ $rc = 0 ] || { cat "$dir/initdb.log" >&2; return 1; }
		printf "port = %s\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\nunix_socket_permissions = 0700\n" \
			"$port" "$home" >>"$home/data/postgresql.conf"
	fi
	if ! as_cluster_owner "$bin/pg_ctl" -D "$home/data" status >/dev/null 2>&1; then
		echo "starting the PostgreSQL cluster in $home/data" >&2
		as_cluster_owner "$bin/pg_ctl" -D "$home/data" -l "$home/postgres.log" -w -t 60 start >/dev/null ||
			{ tail -n 20 "$home/postgres.log" >&2; return 1; }
	fi
	[ -s "$dir/pgpass" ] || secure_trusting_cluster "$dir" "$home" "$port" "$bin"
}

# new_password DIR PORT writes a new random password for postgres to
# DIR/pgpass, in the format of libpq's password file, readable by us only.
new_password() {
	local pw
	pw=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n') && [ ${#pw} = 48 ] || return 1
	(umask 077 && echo "127.0.0.1:$2:*:postgres:$pw" >"$1/pgpass")
}

# secure_trusting_cluster DIR HOME PORT BIN gives a cluster made by an earlier
# version (trust auth, a socket anyone could enter) a password and password
# auth, and restarts it with a socket only its owner can enter.
secure_trusting_cluster() {
	local dir=$1 home=$2 port=$3 bin=$4
	echo "giving the PostgreSQL cluster in $home/data a password (it trusted every local user)" >&2
	new_password "$dir" "$port" || return 1
	as_cluster_owner "$bin/psql" -X -q -h "$home" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 \
		-c "ALTER ROLE postgres PASSWORD '$(cut -d: -f5 "$dir/pgpass")'" >/dev/null || { rm -f "$dir/pgpass"; return 1; }
	as_cluster_owner sh -c 'printf "local all all scram-sha-256\nhost all all 127.0.0.1/32 scram-sha-256\nhost all all ::1/128 scram-sha-256\n" >"$1/pg_hba.conf" &&
		echo "unix_socket_permissions = 0700" >>"$1/postgresql.conf"' sh "$home/data" &&
		as_cluster_owner "$bin/pg_ctl" -D "$home/data" -l "$home/postgres.log" -w -t 60 -m fast restart >/dev/null
}

# stop_local_cluster DIR stops the cluster local_cluster started, if it runs.
stop_local_cluster() {
	local dir home bin
	dir=$(cd "$1" 2>/dev/null && pwd) || { echo "no cluster in $1" >&2; return 0; }
	home=$(cluster_home "$dir")
	[ -s "$home/data/PG_VERSION" ] && bin=$(pg_bindir) || { echo "no cluster in $dir" >&2; return 0; }
	as_cluster_owner "$bin/pg_ctl" -D "$home/data" status >/dev/null 2>&1 || { echo "the cluster in $home is not running" >&2; return 0; }
	as_cluster_owner "$bin/pg_ctl" -D "$home/data" -m fast -w stop >&2
}
