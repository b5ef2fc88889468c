#!/usr/bin/env bash
# Test backends for turnout: two PostgreSQL 15 clusters ("old", "new") and two
# redis-server 7.0 instances on free loopback ports, in one temporary folder,
# plus a test CA whose server certificate both Postgres clusters use.
#
#   backends.sh start DIR     start everything, write DIR/env (shell exports)
#   backends.sh stop DIR      stop everything that DIR/*.pid names
#   backends.sh run -- CMD…   start in a fresh temp folder, run CMD with the
#                             exports, stop (also on failure or signal), exit
#                             with CMD's status
#   backends.sh pg-start DIR NAME    one more cluster of its own in DIR (a test
#                             that crashes a server); prints its port
#   backends.sh pg-crash DIR NAME    kill -9 of its postmaster
#   backends.sh pg-restart DIR NAME  start it again (crash recovery)
#
# Postgres refuses to run as root, so under root the clusters run as the
# `postgres` user. Every server binds 127.0.0.1 only.
set -euo pipefail

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PY=/usr/bin/python3

PG_USER=turnout
PG_PASSWORD=turnout-secret
PG_MD5_USER=md5user
PG_MD5_PASSWORD=md5-secret
PG_PLAIN_USER=plainuser
PG_PLAIN_PASSWORD=plain-secret
REDIS_USER=turnout
REDIS_PASSWORD=redis-secret

log() { printf 'backends: %s\n' "$*" >&2; }

as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_ports() {  # free_ports N: N distinct free loopback ports, one per line
  "$PY" - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
for s in socks:
    print(s.getsockname()[1])
PY
}

make_ca() {  # make_ca DIR: test CA and a server certificate for 127.0.0.1/localhost
  local d=$1/tls
  mkdir -p "$d"
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=turnout test CA" \
    -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$d/san.ext"
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" \
    -CAcreateserial -days 30 -extfile "$d/san.ext" -out "$d/server.crt" 2>/dev/null
  chmod 0644 "$d"/*.crt
  chmod 0600 "$d"/*.key
}

start_pg() {  # start_pg DIR NAME PORT
  local dir=$1 name=$2 port=$3
  # One folder per cluster, owned by the user running it: data, socket,
  # log, and its own copy of the server key (Postgres checks the key's owner).
  local home=$dir/pg-$name
  local data=$home/data sock=$home/sock
  install -d -m 0755 "$home" "$sock"
  install -m 0600 "$dir/tls/server.key" "$home/server.key"
  install -m 0644 "$dir/tls/server.crt" "$home/server.crt"
  if [ "$(id -u)" -eq 0 ]; then chown -R postgres "$home"; fi
  as_postgres "$PG_BIN/initdb" -D "$data" -U postgres -A trust --no-sync >"$dir/pg-$name-initdb.log" 2>&1 \
    || { cat "$dir/pg-$name-initdb.log" >&2; return 1; }
  cat >>"$data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$sock'
max_connections = 300
max_prepared_transactions = 50
# The change stream (control/pg_change_stream.h) decodes old's WAL.
wal_level = logical
max_replication_slots = 20
max_wal_senders = 20
fsync = off
synchronous_commit = off
full_page_writes = off
ssl = on
ssl_cert_file = '$home/server.crt'
ssl_key_file = '$home/server.key'
log_min_messages = warning
CONF
  # Local socket trusts (the harness itself); TCP needs each user's method.
  cat >"$data/pg_hba.conf" <<HBA
local all all trust
host  all $PG_MD5_USER   127.0.0.1/32 md5
host  all $PG_PLAIN_USER 127.0.0.1/32 password
host  all all            127.0.0.1/32 scram-sha-256
HBA
  as_postgres "$PG_BIN/pg_ctl" -D "$data" -l "$home/server.log" -w -t 60 start >/dev/null \
    || { cat "$home/server.log" >&2; return 1; }
  head -1 "$data/postmaster.pid" >"$dir/pg-$name.pid"
  as_postgres psql -X -q -h "$sock" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 <<SQL
SET password_encryption = 'scram-sha-256';
CREATE ROLE $PG_USER LOGIN SUPERUSER PASSWORD '$PG_PASSWORD';
CREATE ROLE $PG_PLAIN_USER LOGIN PASSWORD '$PG_PLAIN_PASSWORD';
SET password_encryption = 'md5';
CREATE ROLE $PG_MD5_USER LOGIN PASSWORD '$PG_MD5_PASSWORD';
CREATE DATABASE app OWNER $PG_USER;
SQL
}

start_redis() {  # start_redis DIR NAME PORT
  local dir=$1 name=$2 port=$3
  mkdir -p "$dir/redis-$name"
  # The default user stays password-less so plain redis-cli works; the
  # `turnout` ACL user exercises upstream AUTH.
  redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
    --dir "$dir/redis-$name" --daemonize yes --pidfile "$dir/redis-$name.pid" \
    --logfile "$dir/redis-$name.log" \
    --user default on nopass '~*' '&*' '+@all' \
    --user "$REDIS_USER" on ">$REDIS_PASSWORD" '~*' '&*' '+@all'
  local i
  for i in $(seq 1 100); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  log "redis $name did not start"; cat "$dir/redis-$name.log" >&2; return 1
}

cmd_start() {
  local dir=$1
  mkdir -p "$dir"
  chmod 0755 "$dir"
  local ports
  mapfile -t ports < <(free_ports 4)
  make_ca "$dir"
  start_pg "$dir" old "${ports[0]}"
  start_pg "$dir" new "${ports[1]}"
  start_redis "$dir" old "${ports[2]}"
  start_redis "$dir" new "${ports[3]}"
  cat >"$dir/env" <<ENV
export TURNOUT_TEST_DIR='$dir'
export TURNOUT_TEST_CA='$dir/tls/ca.crt'
export TURNOUT_TEST_SERVER_CERT='$dir/tls/server.crt'
export TURNOUT_TEST_SERVER_KEY='$dir/tls/server.key'
export TURNOUT_TEST_PG_OLD_PORT=${ports[0]}
export TURNOUT_TEST_PG_NEW_PORT=${ports[1]}
export TURNOUT_TEST_PG_USER=$PG_USER
export TURNOUT_TEST_PG_PASSWORD=$PG_PASSWORD
export TURNOUT_TEST_PG_MD5_USER=$PG_MD5_USER
export TURNOUT_TEST_PG_MD5_PASSWORD=$PG_MD5_PASSWORD
export TURNOUT_TEST_PG_PLAIN_USER=$PG_PLAIN_USER
export TURNOUT_TEST_PG_PLAIN_PASSWORD=$PG_PLAIN_PASSWORD
export TURNOUT_TEST_REDIS_OLD_PORT=${ports[2]}
export TURNOUT_TEST_REDIS_NEW_PORT=${ports[3]}
export TURNOUT_TEST_REDIS_USER=$REDIS_USER
export TURNOUT_TEST_REDIS_PASSWORD=$REDIS_PASSWORD
ENV
  log "postgres old=127.0.0.1:${ports[0]} new=127.0.0.1:${ports[1]}; redis old=127.0.0.1:${ports[2]} new=127.0.0.1:${ports[3]}"
}

cmd_stop() {
  local dir=$1 pidfile pid
  for pidfile in "$dir"/pg-*.pid "$dir"/redis-*.pid; do
    [ -f "$pidfile" ] || continue
    pid=$(head -1 "$pidfile")
    # SIGINT is Postgres' fast shutdown; Redis treats it as SIGTERM.
    kill -INT "$pid" 2>/dev/null || true
  done
  for pidfile in "$dir"/pg-*.pid "$dir"/redis-*.pid; do
    [ -f "$pidfile" ] || continue
    pid=$(head -1 "$pidfile")
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$pidfile"
  done
}

cmd_run() {
  RUN_DIR=$(mktemp -d /tmp/turnout-backends.XXXXXX)
  # The trap stops the servers however the command ends.
  trap 'cmd_stop "$RUN_DIR"; rm -rf "$RUN_DIR"' EXIT
  trap 'exit 130' INT TERM
  cmd_start "$RUN_DIR"
  # shellcheck disable=SC1091
  source "$RUN_DIR/env"
  local rc=0
  "$@" || rc=$?
  return $rc
}

cmd_pg_start() {  # cmd_pg_start DIR NAME
  local dir=$1 name=$2 port
  mkdir -p "$dir"
  chmod 0755 "$dir"
  [ -f "$dir/tls/server.key" ] || make_ca "$dir"
  port=$(free_ports 1)
  start_pg "$dir" "$name" "$port" >&2
  echo "$port"
}

cmd_pg_crash() {  # cmd_pg_crash DIR NAME
  kill -KILL "$(head -1 "$1/pg-$2.pid")"
}

cmd_pg_restart() {  # cmd_pg_restart DIR NAME
  local home=$1/pg-$2 attempt
  # A crashed postmaster's children exit on their own, holding its shared
  # memory until they have: a start before then is refused; try again.
  for attempt in $(seq 1 20); do
    if as_postgres "$PG_BIN/pg_ctl" -D "$home/data" -l "$home/server.log" -w -t 60 start >/dev/null 2>&1; then
      head -1 "$home/data/postmaster.pid" >"$1/pg-$2.pid"
      return 0
    fi
    sleep 0.5
  done
  cat "$home/server.log" >&2
  return 1
}

case "${1:-}" in
  start) cmd_start "${2:?usage: backends.sh start DIR}" ;;
  pg-start) cmd_pg_start "${2:?usage: backends.sh pg-start DIR NAME}" "${3:?usage: backends.sh pg-start DIR NAME}" ;;
  pg-crash) cmd_pg_crash "${2:?usage: backends.sh pg-crash DIR NAME}" "${3:?usage: backends.sh pg-crash DIR NAME}" ;;
  pg-restart) cmd_pg_restart "${2:?usage: backends.sh pg-restart DIR NAME}" "${3:?usage: backends.sh pg-restart DIR NAME}" ;;
  stop) cmd_stop "${2:?usage: backends.sh stop DIR}" ;;
  run) shift; [ "${1:-}" = "--" ] && shift; cmd_run "$@" ;;
  *) echo "usage: backends.sh start DIR | stop DIR | run -- CMD... | pg-start|pg-crash|pg-restart DIR NAME" >&2; exit 2 ;;
esac
