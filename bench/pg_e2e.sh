#!/usr/bin/env bash
# End-to-end PostgreSQL comparison: pgbench direct to the old harness
# cluster, through PgBouncer (session mode), through turnout (protocol
# mode) and through turnout with its server connections pooled
# (backends[].pool: what `-C`, a connection per transaction, measures),
# interleaved per workload so drift on a shared machine hits all alike. Prints a table of tps, ratios against direct, and the p50 latency
# each proxy adds at -c 1 (from pgbench's per-transaction log).
#
#   bench/pg_e2e.sh BUILD_DIR        (under the harness env: make bench)
#   BENCH_SECONDS=10 BENCH_SCALE=10  (defaults)
set -euo pipefail
# shellcheck source=bench/lib/pgbouncer.sh
source "$(dirname "$0")/lib/pgbouncer.sh"
BUILD=${1:?usage: pg_e2e.sh BUILD_DIR}
BUILD=$(cd "$BUILD" && pwd)
SECONDS_EACH=${BENCH_SECONDS:-10}
SCALE=${BENCH_SCALE:-10}
: "${TURNOUT_TEST_PG_OLD_PORT:?run under tests/harness/backends.sh (make bench)}"
PY=/usr/bin/python3

WORK=$(mktemp -d /tmp/turnout-pg-bench.XXXXXX)
chmod 0755 "$WORK"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$WORK/pgbouncer.pid" ] && kill "$(cat "$WORK/pgbouncer.pid")" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

read -r TURNOUT_PORT BOUNCER_PORT POOLED_PORT < <("$PY" - <<'PY'
import socket
s = [socket.socket() for _ in range(3)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])
PY
)
DIRECT_PORT=$TURNOUT_TEST_PG_OLD_PORT
USER=$TURNOUT_TEST_PG_USER
export PGPASSWORD=$TURNOUT_TEST_PG_PASSWORD

# turnout: one protocol-mode route, trust at turnout, SCRAM login upstream.
cat >"$WORK/turnout.yaml" <<YAML
instance_id: bench
log_level: warn
admin:
  enabled: false
limits:
  max_connections: 500
backends:
  - name: pg-old
    protocol: postgres
    address: 127.0.0.1:$DIRECT_PORT
    user: $USER
    password: $PGPASSWORD
  - name: pg-old-pooled
    protocol: postgres
    address: 127.0.0.1:$DIRECT_PORT
    user: $USER
    password: $PGPASSWORD
    pool: {idle: 32}
routes:
  - name: pg
    protocol: postgres
    mode: protocol
    listen: 127.0.0.1:$TURNOUT_PORT
    old: pg-old
  - name: pg-pooled
    protocol: postgres
    mode: protocol
    listen: 127.0.0.1:$POOLED_PORT
    old: pg-old-pooled
YAML
"$BUILD/proxy/turnout" --config "$WORK/turnout.yaml" >"$WORK/turnout.log" 2>&1 &
pids+=($!)

# PgBouncer in session mode, as a sidecar would run it.
start_pgbouncer "$WORK" "$BOUNCER_PORT" app "$DIRECT_PORT"

wait_port() {
  for _ in $(seq 1 100); do
    "$PY" -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 0.2)" "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "pg_e2e: nothing listens on $1" >&2; return 1
}
wait_port "$TURNOUT_PORT"
wait_port "$BOUNCER_PORT"
wait_port "$POOLED_PORT"

conn() { echo "host=127.0.0.1 port=$1 user=$USER dbname=app sslmode=disable"; }
pgbench -i -q -s "$SCALE" "$(conn "$DIRECT_PORT")" >/dev/null 2>&1

# run NAME TARGET PORT ARGS...: one pgbench run; records tps and p50 (ms).
declare -A TPS P50
run() {
  local name=$1 target=$2 port=$3; shift 3
  local logdir="$WORK/log-$name-$target"
  mkdir -p "$logdir"
  local out
  out=$(cd "$logdir" && pgbench -n -T "$SECONDS_EACH" -l --log-prefix=tx "$@" "$(conn "$port")" 2>&1) || {
    echo "pg_e2e: pgbench failed for $name/$target:" >&2; echo "$out" >&2; return 1; }
  TPS[$name,$target]=$(echo "$out" | awk '/^tps = /{print $3; exit}')
  # Per-transaction log: column 3 is the latency in microseconds.
  P50[$name,$target]=$(cat "$logdir"/tx.* | awk '{print $3}' | sort -n | awk '{a[NR]=$1} END{printf "%.3f", a[int((NR+1)/2)]/1000}')
  rm -rf "$logdir"
}

workloads=(
  "select-simple-c1|-S -M simple -c 1"
  "select-simple-c32|-S -M simple -c 32 -j 2"
  "select-prepared-c1|-S -M prepared -c 1"
  "select-prepared-c32|-S -M prepared -c 32 -j 2"
  "tpcb-prepared-c8|-M prepared -c 8 -j 2"
  "connect-C-c4|-S -M simple -C -c 4"
)
targets=("direct|$DIRECT_PORT" "pgbouncer|$BOUNCER_PORT" "turnout|$TURNOUT_PORT" "pooled|$POOLED_PORT")
for w in "${workloads[@]}"; do
  name=${w%%|*}; args=${w#*|}
  for t in "${targets[@]}"; do
    # shellcheck disable=SC2086
    run "$name" "${t%%|*}" "${t#*|}" $args
  done
done

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r); PostgreSQL $(pgbench --version | awk '{print $3}'), $(pgbouncer --version 2>/dev/null | head -1)"
echo "pgbench -T $SECONDS_EACH, scale $SCALE, all on loopback; ratios are tps / direct tps"
echo
printf '| %-20s | %10s | %10s | %9s | %10s | %9s | %10s | %9s | %s |\n' workload "direct tps" "pgbouncer" "ratio" turnout ratio "pooled" ratio "p50 ms direct / +pgbouncer / +turnout"
printf '|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n' ---------------------- ------------ ------------ ----------- ------------ ----------- ------------ ----------- ----------------------------------------
for w in "${workloads[@]}"; do
  name=${w%%|*}
  d=${TPS[$name,direct]} b=${TPS[$name,pgbouncer]} t=${TPS[$name,turnout]} p=${TPS[$name,pooled]}
  lat=""
  if [[ $name == *-c1 ]]; then
    lat=$(awk -v d="${P50[$name,direct]}" -v b="${P50[$name,pgbouncer]}" -v t="${P50[$name,turnout]}" \
      'BEGIN{printf "%.3f / %+.3f / %+.3f", d, b-d, t-d}')
  fi
  awk -v n="$name" -v d="$d" -v b="$b" -v t="$t" -v p="$p" -v l="$lat" \
    'BEGIN{printf "| %-20s | %10.0f | %10.0f | %9.2f | %10.0f | %9.2f | %10.0f | %9.2f | %s |\n", n, d, b, b/d, t, t/d, p, p/d, l}'
done
