#!/usr/bin/env bash
# CPU per request: how much processor time a proxy spends per request it
# relays, turnout against PgBouncer (session mode) for PostgreSQL and
# twemproxy for Redis, in one run. The proxy's own CPU time (utime + stime
# of its process from /proc, user and kernel apart) over a fixed load,
# divided by the requests the load completed; throughput moves by tens of
# percent between runs on a shared VM, CPU per request much less.
#
#   bench/cpu_per_request_e2e.sh BUILD_DIR   (under tests/harness/backends.sh run)
#   CPU_ROUNDS=3       turnout and the other proxy in turn, this many times;
#                      each figure is the median of its rounds
#   CPU_SECONDS=8      pgbench's duration per point
#   CPU_REQUESTS=200000  redis-benchmark's requests per point (x4 pipelined)
#
# Workloads: pgbench select-only (`-S`) by the simple and the prepared
# protocol at -c 8 -j 2 (one transaction is one statement); redis-benchmark
# GET and SET at -c 50, unpipelined and at -P 16 (a request is a command).
set -euo pipefail
BUILD=${1:?usage: cpu_per_request_e2e.sh BUILD_DIR}
BUILD=$(cd "$BUILD" && pwd)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
: "${TURNOUT_TEST_PG_OLD_PORT:?run under tests/harness/backends.sh run}"
ROUNDS=${CPU_ROUNDS:-3}
SECS=${CPU_SECONDS:-8}
REQUESTS=${CPU_REQUESTS:-200000}
CLIENTS=50
USER=$TURNOUT_TEST_PG_USER
export PGPASSWORD=$TURNOUT_TEST_PG_PASSWORD PGSSLMODE=disable
PG=$TURNOUT_TEST_PG_OLD_PORT
REDIS=$TURNOUT_TEST_REDIS_OLD_PORT
DB=cpu_bench
command -v nutcracker >/dev/null || { echo "nutcracker (twemproxy) is not installed" >&2; exit 1; }
# shellcheck source-path=SCRIPTDIR source=lib/redis_bench.sh
source "$ROOT/bench/lib/redis_bench.sh"
# shellcheck source-path=SCRIPTDIR source=lib/pgbouncer.sh
source "$ROOT/bench/lib/pgbouncer.sh"
bench_workdir turnout-cpu-bench
chmod 0755 "$WORK"
stop_bouncer() { [ -f "$WORK/pgbouncer.pid" ] && kill "$(cat "$WORK/pgbouncer.pid")" 2>/dev/null || true; }
trap 'stop_bouncer; bench_cleanup' EXIT

TURN_PG=$(free_port) TURN_REDIS=$(free_port) BOUNCER=$(free_port) TWEM=$(free_port) STATS=$(free_port)
cat >"$WORK/turnout.yaml" <<YAML
log_level: warn
admin:
  enabled: false
limits:
  max_connections: 500
backends:
  - {name: pg-old, protocol: postgres, address: "127.0.0.1:$PG", user: $USER, password: $PGPASSWORD}
  - {name: redis-old, protocol: redis, address: "127.0.0.1:$REDIS"}
routes:
  - {name: pg, protocol: postgres, mode: protocol, listen: "127.0.0.1:$TURN_PG", old: pg-old}
  - {name: redis, protocol: redis, mode: protocol, listen: "127.0.0.1:$TURN_REDIS", old: redis-old}
YAML
"$BUILD/proxy/turnout" --config "$WORK/turnout.yaml" >"$WORK/turnout.log" 2>&1 &
TURNOUT_PID=$!
PIDS+=("$TURNOUT_PID")
start_pgbouncer "$WORK" "$BOUNCER" "$DB" "$PG"
start_twemproxy "$TWEM" "$STATS" "$REDIS"
wait_port "$TURN_REDIS"
wait_port "$TWEM"

psql -X -q -h 127.0.0.1 -p "$PG" -U "$USER" -d postgres -c "drop database if exists $DB" -c "create database $DB"
pgbench -i -q -s 10 -h 127.0.0.1 -p "$PG" -U "$USER" "$DB" >/dev/null 2>&1
for _ in $(seq 1 100); do [ -s "$WORK/pgbouncer.pid" ] && break; sleep 0.05; done
BOUNCER_PID=$(cat "$WORK/pgbouncer.pid")

# ticks PID -> "utime stime" in clock ticks (proc(5): fields 14 and 15).
ticks() { awk '{print $14, $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)

# measure PID REQUESTS_CMD...: runs the load, prints "user_us sys_us" per
# request; the load prints its request count as its last line.
measure() {
  local pid=$1 u0 s0 u1 s1 n
  shift
  read -r u0 s0 < <(ticks "$pid")
  n=$("$@" | tail -1)
  read -r u1 s1 < <(ticks "$pid")
  [ "${n:-0}" -gt 0 ] || { echo "cpu_per_request: no requests completed ($*)" >&2; exit 1; }
  awk -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v n="$n" -v hz="$HZ" \
    'BEGIN { printf "%.2f %.2f\n", u * 1e6 / hz / n, s * 1e6 / hz / n }'
}
pg_load() {  # pg_load PORT PROTOCOL -> transactions
  pgbench -n -S -M "$2" -c 8 -j 2 -T "$SECS" -h 127.0.0.1 -p "$1" -U "$USER" "$DB" 2>&1 |
    awk '/number of transactions actually processed/ { split($NF, a, "/"); print a[1] }'
}
redis_load() {  # redis_load PORT TEST PIPELINE -> requests
  local n=$REQUESTS
  [ "$3" -gt 1 ] && n=$((REQUESTS * 4))
  redis-benchmark -p "$1" -t "$2" -n "$n" -c "$CLIENTS" -P "$3" -q >/dev/null 2>&1
  echo "$n"
}

# point NAME OTHER_NAME TURNOUT_CMD... -- OTHER_CMD...: the two proxies in
# turn, ROUNDS times; prints one table row of medians.
point() {
  local name=$1 other=$2
  shift 2
  local -a tcmd=() ocmd=()
  while [ "$1" != -- ]; do tcmd+=("$1"); shift; done
  shift
  ocmd=("$@")
  local -a tu=() ts=() ou=() os=()
  local r u s
  for r in $(seq 1 "$ROUNDS"); do
    read -r u s < <(measure "$TURNOUT_PID" "${tcmd[@]}")
    tu+=("$u") ts+=("$s")
    read -r u s < <(measure "$OTHER_PID" "${ocmd[@]}")
    ou+=("$u") os+=("$s")
  done
  local mtu mts mou mos
  mtu=$(median_of "${tu[*]}") mts=$(median_of "${ts[*]}") mou=$(median_of "${ou[*]}") mos=$(median_of "${os[*]}")
  awk -v n="$name" -v o="$other" -v tu="$mtu" -v ts="$mts" -v ou="$mou" -v os="$mos" 'BEGIN {
    t = tu + ts; b = ou + os
    printf "| %-22s | %6.2f | %6.2f | %6.2f | %-10s | %6.2f | %6.2f | %6.2f | %5.2f | %5.2f |\n",
      n, tu, ts, t, o, ou, os, b, (ou > 0 ? tu / ou : 0), (b > 0 ? t / b : 0) }'
}

echo "machine: $(nproc) cores, $(uname -r); $ROUNDS rounds per point, medians; µs of the proxy's CPU per request"
echo
echo "| workload               | turnout user | sys | total | other proxy | user | sys | total | user ratio | total ratio |"
echo "|---|---|---|---|---|---|---|---|---|---|"
OTHER_PID=$BOUNCER_PID
for protocol in simple prepared; do
  point "pgbench -S $protocol -c 8" pgbouncer pg_load "$TURN_PG" "$protocol" -- pg_load "$BOUNCER" "$protocol"
done
OTHER_PID=$TWEM_PID
for pipeline in 1 16; do
  for test in get set; do
    point "redis $test -P $pipeline -c $CLIENTS" twemproxy redis_load "$TURN_REDIS" "$test" "$pipeline" -- \
      redis_load "$TWEM" "$test" "$pipeline"
  done
done
