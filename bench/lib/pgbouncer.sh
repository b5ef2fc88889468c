# shellcheck shell=bash
# Shared by bench/pg_*_e2e.sh (sourced, not run): PgBouncer in session mode,
# as a sidecar would run it, in front of one harness cluster.

# start_pgbouncer WORK PORT DB UPSTREAM_PORT: listens on PORT and serves DB
# from the cluster at UPSTREAM_PORT with USER / PGPASSWORD. Writes
# WORK/pgbouncer.pid; the sourcing script's cleanup kills it.
# BOUNCER_MAX_CLIENTS (500) and BOUNCER_POOL_SIZE (100) size it.
start_pgbouncer() {
  local work=$1 port=$2 db=$3 upstream=$4
  cat >"$work/userlist.txt" <<UL
"$USER" "$PGPASSWORD"
UL
  cat >"$work/pgbouncer.ini" <<INI
[databases]
$db = host=127.0.0.1 port=$upstream dbname=$db user=$USER password=$PGPASSWORD
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $work/userlist.txt
pool_mode = session
max_client_conn = ${BOUNCER_MAX_CLIENTS:-500}
default_pool_size = ${BOUNCER_POOL_SIZE:-100}
logfile = $work/pgbouncer.log
pidfile = $work/pgbouncer.pid
INI
  chmod 0644 "$work"/*
  # PgBouncer, like Postgres, will not run as root.
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres "$work"
    runuser -u postgres -- pgbouncer -d "$work/pgbouncer.ini"
  else
    pgbouncer -d "$work/pgbouncer.ini"
  fi
}
