#!/usr/bin/env bash
# Memory per idle client connection: how much a proxy's resident memory
# grows per client that connected, ran one request and stays idle; turnout
# against PgBouncer (session mode) for PostgreSQL and twemproxy for Redis,
# in one run, each proxy a fresh process measured from its idle start.
#
#   bench/idle_memory_e2e.sh BUILD_DIR      (under tests/harness/backends.sh run)
#   IDLE_CLIENTS=200                         clients held open per proxy
#   IDLE_BUFFER_SIZE=16KiB                   turnout's limits.buffer_size
#                                            (default: its own, 64KiB)
#   IDLE_SETTLE=6                            seconds the clients stay idle
#                                            before the second reading
#
# Each proxy is read twice: half a second after the last client's request,
# and after IDLE_SETTLE seconds of quiet (turnout hands an idle session's
# free buffer pages back after 5 s, proxy/idle_pages.h); the ratio is of
# the second.
#
# The clients are one Python process (psycopg2, redis-py). What each proxy
# holds differs: turnout and PgBouncer in session mode keep a server
# connection per client (PgBouncer assigns it at the first query), twemproxy
# one for all; the figure is the proxy's own memory (VmRSS), not the
# servers'.
set -euo pipefail
BUILD=${1:?usage: idle_memory_e2e.sh BUILD_DIR}
BUILD=$(cd "$BUILD" && pwd)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
: "${TURNOUT_TEST_PG_OLD_PORT:?run under tests/harness/backends.sh run}"
N=${IDLE_CLIENTS:-200}
PY=/usr/bin/python3
USER=$TURNOUT_TEST_PG_USER
export PGPASSWORD=$TURNOUT_TEST_PG_PASSWORD PGSSLMODE=disable
PG=$TURNOUT_TEST_PG_OLD_PORT
REDIS=$TURNOUT_TEST_REDIS_OLD_PORT
DB=idle_bench
# shellcheck source-path=SCRIPTDIR source=lib/redis_bench.sh
source "$ROOT/bench/lib/redis_bench.sh"
# shellcheck source-path=SCRIPTDIR source=lib/pgbouncer.sh
source "$ROOT/bench/lib/pgbouncer.sh"
bench_workdir turnout-idle-bench
chmod 0755 "$WORK"
stop_bouncer() { [ -f "$WORK/pgbouncer.pid" ] && kill "$(cat "$WORK/pgbouncer.pid")" 2>/dev/null || true; }
trap 'stop_bouncer; bench_cleanup' EXIT

psql -X -q -h 127.0.0.1 -p "$PG" -U "$USER" -d postgres -c "drop database if exists $DB" -c "create database $DB"

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
wait_listen() {
  for _ in $(seq 1 100); do
    "$PY" -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 0.2)" "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "idle_memory: nothing listens on $1" >&2
  return 1
}

# hold KIND PORT PID: opens N clients to PORT, each runs one request, then
# prints the proxy's growth per client in kB (from its RSS before the
# first) half a second after, and after IDLE_SETTLE seconds of quiet.
hold() {
  local kind=$1 port=$2 pid=$3 before after settled
  sleep 0.5
  before=$(rss_kb "$pid")
  coproc CLIENTS { "$PY" "$WORK/clients.py" "$kind" "$port" "$N" "$DB" "$USER"; }
  local line
  read -r line <&"${CLIENTS[0]}"
  [ "$line" = ready ] || { echo "idle_memory: $kind clients did not connect" >&2; exit 1; }
  sleep 0.5
  after=$(rss_kb "$pid")
  sleep "$((${IDLE_SETTLE:-6}))"
  settled=$(rss_kb "$pid")
  echo >&"${CLIENTS[1]}"
  wait "$CLIENTS_PID" 2>/dev/null || true
  awk -v a="$after" -v s="$settled" -v b="$before" -v n="$N" 'BEGIN { printf "%.1f %.1f", (a - b) / n, (s - b) / n }'
}

# The clients: N connections, one request each, held until a line on stdin.
cat >"$WORK/clients.py" <<'PY'
import sys
kind, port, n, db, user = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
held = []
if kind == "pg":
    import psycopg2
    for _ in range(n):
        c = psycopg2.connect(host="127.0.0.1", port=port, dbname=db, user=user, sslmode="disable")
        c.autocommit = True
        c.cursor().execute("select 1")
        held.append(c)
else:
    import redis
    for _ in range(n):
        c = redis.Redis(host="127.0.0.1", port=port, single_connection_client=True)
        c.ping()
        held.append(c)
print("ready", flush=True)
sys.stdin.readline()
PY

# turnout: one process per protocol, so each starts from its own idle state.
start_turnout() {  # NAME PROTOCOL BACKEND_PORT LISTEN_PORT; sets TURNOUT_PID
  local extra=""
  [ "$2" = postgres ] && extra="    user: $USER
    password: $PGPASSWORD"
  cat >"$WORK/$1.yaml" <<YAML
instance_id: bench
log_level: warn
admin:
  enabled: false
limits:
  max_connections: $((N + 50))
${IDLE_BUFFER_SIZE:+  buffer_size: $IDLE_BUFFER_SIZE}
backends:
  - name: old
    protocol: $2
    address: 127.0.0.1:$3
$extra
routes:
  - name: r
    protocol: $2
    mode: protocol
    listen: 127.0.0.1:$4
    old: old
YAML
  "$BUILD/proxy/turnout" --config "$WORK/$1.yaml" >"$WORK/$1.log" 2>&1 &
  TURNOUT_PID=$!
  PIDS+=("$TURNOUT_PID")
}

TPG=$(free_port); BOUNCER=$(free_port); TREDIS=$(free_port); TWEM=$(free_port); STATS=$(free_port)
start_turnout turnout-pg postgres "$PG" "$TPG"
wait_listen "$TPG"
turnout_pg=$(hold pg "$TPG" "$TURNOUT_PID")

BOUNCER_MAX_CLIENTS=$((N + 50)) BOUNCER_POOL_SIZE=$((N + 10)) start_pgbouncer "$WORK" "$BOUNCER" "$DB" "$PG"
wait_listen "$BOUNCER"
bouncer=$(hold pg "$BOUNCER" "$(cat "$WORK/pgbouncer.pid")")
stop_bouncer

start_turnout turnout-redis redis "$REDIS" "$TREDIS"
wait_listen "$TREDIS"
turnout_redis=$(hold redis "$TREDIS" "$TURNOUT_PID")

start_twemproxy "$TWEM" "$STATS" "$REDIS"
wait_listen "$TWEM"
twem=$(hold redis "$TWEM" "$TWEM_PID")

echo "### Memory per idle client connection ($N clients per proxy, growth of the proxy's VmRSS)"
echo
echo "| protocol | turnout kB, 0.5 s / ${IDLE_SETTLE:-6} s idle | other proxy | its kB, 0.5 s / ${IDLE_SETTLE:-6} s | turnout / other (${IDLE_SETTLE:-6} s) |"
echo "|---|---|---|---|---|"
row() {  # PROTOCOL "TURNOUT_A TURNOUT_S" OTHER "OTHER_A OTHER_S"
  awk -v p="$1" -v t="$2" -v name="$3" -v o="$4" 'BEGIN { split(t, x, " "); split(o, y, " ")
    printf "| %s | %s / %s | %s | %s / %s | %s |\n", p, x[1], x[2], name, y[1], y[2], (y[2] > 0 ? sprintf("%.1f", x[2] / y[2]) : "-") }'
}
row postgres "$turnout_pg" "pgbouncer (session)" "$bouncer"
row redis "$turnout_redis" twemproxy "$twem"
