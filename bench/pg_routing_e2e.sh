#!/usr/bin/env bash
# End-to-end cost of PostgreSQL routing: pgbench direct to old, through
# PgBouncer (session pooling: transaction pooling would mix clients' work on
# one server connection, which a dual-writer cannot copy) and through one
# turnout on five routes to the same clusters: passthrough (no migration),
# canary with every read on old and dual-write sync, the same with async,
# shadow_traffic (reads mirrored to new and compared) and shadow_traffic with
# shadow_writes (writes also run on new, in a transaction rolled back).
# Workloads are interleaved configuration by configuration so drift on a
# shared machine hits all alike. Prints tps and average latency per run and
# the tps ratios to direct and to passthrough; after each dual-write run,
# whether old and new hold equal pgbench_accounts, _branches and _tellers.
#
#   bench/pg_routing_e2e.sh [TURNOUT|BUILD_DIR]   (under tests/harness/backends.sh run)
#
# The argument is the turnout binary or a build folder holding
# proxy/turnout; default build/proxy/turnout. The bench database
# (BENCH_DB, default turnout_routing_bench) is dropped and re-created on
# both clusters, and the pgbench tables are re-initialised on both before
# every TPC-B run so each starts from equal data.
#
# Knobs: BENCH_SECONDS (10 per run), BENCH_SCALE (1), TURNOUT_WORKERS (0:
# one per core), BENCH_DB, KEEP_WORK (keep the scratch folder).
set -euo pipefail
# shellcheck source=bench/lib/pgbouncer.sh
source "$(dirname "$0")/lib/pgbouncer.sh"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TURNOUT=${1:-$ROOT/build/proxy/turnout}
[ -d "$TURNOUT" ] && TURNOUT=$TURNOUT/proxy/turnout
[ -x "$TURNOUT" ] || { echo "no turnout binary at $TURNOUT" >&2; exit 1; }
TURNOUT=$(cd "$(dirname "$TURNOUT")" && pwd)/$(basename "$TURNOUT")
SECONDS_EACH=${BENCH_SECONDS:-10}
SCALE=${BENCH_SCALE:-1}
TURNOUT_WORKERS=${TURNOUT_WORKERS:-0}
DB=${BENCH_DB:-turnout_routing_bench}
: "${TURNOUT_TEST_PG_OLD_PORT:?run under tests/harness/backends.sh run}"
OLD=$TURNOUT_TEST_PG_OLD_PORT
NEW=$TURNOUT_TEST_PG_NEW_PORT
USER=$TURNOUT_TEST_PG_USER
export PGPASSWORD=$TURNOUT_TEST_PG_PASSWORD

WORK=$(mktemp -d /tmp/turnout-pg-routing-bench.XXXXXX)
chmod 0755 "$WORK"
PIDS=()
# Run by the EXIT trap.
# shellcheck disable=SC2317
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -f "$WORK/pgbouncer.pid" ]; then kill "$(cat "$WORK/pgbouncer.pid")" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
conn() { echo "host=127.0.0.1 port=$1 user=$USER dbname=${2:-$DB} sslmode=disable"; }
sql() { PGOPTIONS="-c client_min_messages=warning" psql -X -q -A -t -v ON_ERROR_STOP=1 "$(conn "$@")"; }  # sql PORT [DB] <<<query
wait_port() {
  for _ in $(seq 1 100); do
    pg_isready -q -h 127.0.0.1 -p "$1" -t 1 && return 0
    sleep 0.05
  done
  echo "nothing answers on port $1" >&2
  return 1
}

# Configurations: name, then the route's strategy (turnout routes only).
CONFIGS=(direct pgbouncer passthrough dw_sync dw_async shadow shadow_writes)
declare -A STRATEGY=(
  [dw_sync]='{type: canary, read_percentage: 0, write_mode: {mode: dual_write, policy: old_authoritative, apply: sync}}'
  [dw_async]='{type: canary, read_percentage: 0, write_mode: {mode: dual_write, policy: old_authoritative, apply: async}}'
  [shadow]='{type: shadow_traffic}'
  [shadow_writes]='{type: shadow_traffic, shadow_writes: true}'
)
declare -A PORT=([direct]=$OLD)
for c in pgbouncer passthrough "${!STRATEGY[@]}"; do PORT[$c]=$(free_port); done
ADMIN=$(free_port)

for p in "$OLD" "$NEW"; do
  sql "$p" postgres <<SQL
DROP DATABASE IF EXISTS $DB;
CREATE DATABASE $DB OWNER $USER;
SQL
done
# init: the pgbench tables, identical on both clusters (pgbench -i loads
# deterministic rows: abalance 0, no history).
init() {
  for p in "$OLD" "$NEW"; do pgbench -i -q -s "$SCALE" "$(conn "$p")" >/dev/null 2>&1; done
}
init

# turnout: trust at turnout, SCRAM upstream, the bench database on both.
TOKEN=bench-admin-token-0123456789abcdef
echo "$TOKEN admin bench" >"$WORK/tokens"
{
  cat <<YAML
instance_id: bench
workers: $TURNOUT_WORKERS
log_level: warn
admin:
  listen: 127.0.0.1:$ADMIN
  tokens_file: tokens
state_store:
  path: state.json
journal:
  path: journal.log
limits:
  max_connections: 500
backends:
  - name: pg-old
    protocol: postgres
    address: 127.0.0.1:$OLD
    user: $USER
    password: $PGPASSWORD
    database: $DB
  - name: pg-new
    protocol: postgres
    address: 127.0.0.1:$NEW
    user: $USER
    password: $PGPASSWORD
    database: $DB
routes:
  - name: passthrough
    protocol: postgres
    mode: protocol
    listen: 127.0.0.1:${PORT[passthrough]}
    old: pg-old
YAML
  for c in dw_sync dw_async shadow shadow_writes; do
    cat <<YAML
  - name: $c
    protocol: postgres
    mode: protocol
    listen: 127.0.0.1:${PORT[$c]}
    old: pg-old
    new: pg-new
    strategy: ${STRATEGY[$c]}
YAML
  done
} >"$WORK/turnout.yaml"
(cd "$WORK" && exec "$TURNOUT" --config "$WORK/turnout.yaml" >"$WORK/turnout.log" 2>&1) &
PIDS+=($!)

# PgBouncer in session mode, as a sidecar would run it.
start_pgbouncer "$WORK" "${PORT[pgbouncer]}" "$DB" "$OLD"
for c in "${CONFIGS[@]}"; do wait_port "${PORT[$c]}"; done

# tables_md5 PORT: one digest over the three tables pgbench updates in
# place (pgbench_history is left out: its mtime is each server's now()).
tables_md5() {
  sql "$1" <<'SQL'
SELECT md5(string_agg(d, ',' ORDER BY t)) FROM (
  SELECT 'a' AS t, md5(string_agg(x::text, ',' ORDER BY aid)) AS d FROM pgbench_accounts x
  UNION ALL SELECT 'b', md5(string_agg(x::text, ',' ORDER BY bid)) FROM pgbench_branches x
  UNION ALL SELECT 't', md5(string_agg(x::text, ',' ORDER BY tid)) FROM pgbench_tellers x) s;
SQL
}
# check_equal LABEL: waits up to 15 s for async work still queued (turnout
# applies it for up to 10 s after the client left), then reports.
CHECKS=()
FAILED=0
check_equal() {
  local a b waited=0
  while :; do
    a=$(tables_md5 "$OLD") b=$(tables_md5 "$NEW")
    [ "$a" = "$b" ] && break
    [ "$waited" -ge 15 ] && break
    sleep 1
    waited=$((waited + 1))
  done
  if [ "$a" = "$b" ]; then
    CHECKS+=("$1: old and new equal (accounts, branches, tellers; after ${waited} s)")
  else
    CHECKS+=("$1: old and new DIFFER after ${waited} s (old $a, new $b)")
    FAILED=1
  fi
}

# check_history LABEL: every TPC-B transaction pgbench counted appended one
# pgbench_history row on old (init empties it), so the figure is work done.
# Up to one more per client: a commit in flight when the time ran out.
HISTORY_OK=1
check_history() {
  local rows
  rows=$(sql "$OLD" <<<'SELECT count(*) FROM pgbench_history')
  if [ -z "${TXNS:-}" ] || [ "$rows" -lt "$TXNS" ] || [ "$rows" -gt $((TXNS + ${CLIENTS:-0})) ]; then
    CHECKS+=("$1: pgbench counted ${TXNS:-?} transactions but old's pgbench_history holds $rows rows")
    HISTORY_OK=0 FAILED=1
  fi
}

# counters: turnout's secondary-work counters, one "name{labels} value" a line.
counters() {
  curl -s "http://127.0.0.1:$ADMIN/metrics" |
    grep -E '^turnout_(dualwrite_total|shadow_comparisons_total|shadow_dropped_total)\{' || true
}
# work_delta ROUTE BEFORE AFTER: what the route's secondary did in between,
# e.g. "applied 15315" or "matched 40000, mismatched 600, dropped 1653".
work_delta() {
  awk -v r="route=\"$1\"" '
    FNR == NR { before[$1] = $2; next }
    index($1, r) {
      d = $2 - before[$1]
      if (d <= 0) next
      n = $1
      if (n ~ /^turnout_shadow_dropped/) k = "dropped"
      else { match(n, /result="[a-z]+"/); k = substr(n, RSTART + 8, RLENGTH - 9) }
      if (k == "match") k = "matched"
      if (k == "mismatch") k = "mismatched"
      out = out (out == "" ? "" : ", ") k " " d
    }
    END { print out }' <(printf '%s\n' "$2") <(printf '%s\n' "$3")
}

# run WORKLOAD CONFIG ARGS...: one pgbench run; records tps and average
# latency (ms), or "-" when pgbench failed, and the secondary's work.
declare -A TPS LAT WORKDONE
run() {
  local w=$1 c=$2 out rc=0 before
  shift 2
  before=$(counters)
  out=$(pgbench -n -T "$SECONDS_EACH" "$@" "$(conn "${PORT[$c]}")" 2>&1) || rc=$?
  # Async work still queued lands within turnout's 10 s after the clients left.
  if [ "$c" = dw_async ]; then
    for _ in $(seq 1 20); do [ "$(counters)" = "$(sleep 0.5; counters)" ] && break; done
  fi
  WORKDONE[$w,$c]=$(work_delta "$c" "$before" "$(counters)")
  TPS[$w,$c]=$(awk '/^tps = /{print $3; exit}' <<<"$out")
  TXNS=$(awk '/^number of transactions actually processed: /{print $6; exit}' <<<"$out")
  CLIENTS=$(awk '/^number of clients: /{print $4; exit}' <<<"$out")
  LAT[$w,$c]=$(awk '/^latency average = /{print $4; exit}' <<<"$out")
  if [ "$rc" -ne 0 ] || [ -z "${TPS[$w,$c]}" ]; then
    echo "pgbench failed ($rc) for $w on $c:" >&2
    tail -5 <<<"$out" >&2
    TPS[$w,$c]=${TPS[$w,$c]:--} LAT[$w,$c]=${LAT[$w,$c]:--}
    [ "$rc" -ne 0 ] && TPS[$w,$c]+="!"
    FAILED=1
  fi
}

# Select-only first: nothing writes, so both sides stay equal for shadow.
WORKLOADS=(
  "select-only c1|-S -M prepared -c 1 -j 1"
  "select-only c8|-S -M prepared -c 8 -j 2"
  "tpcb-like c1|-b tpcb-like -M prepared -c 1 -j 1"
  "tpcb-like c8|-b tpcb-like -M prepared -c 8 -j 2"
)
for wl in "${WORKLOADS[@]}"; do
  w=${wl%%|*} args=${wl#*|}
  for c in "${CONFIGS[@]}"; do
    [[ $w == tpcb* ]] && init
    # shellcheck disable=SC2086
    run "$w" "$c" $args
    if [[ $w == tpcb* ]]; then
      check_history "$w, $c"
      [[ $c == dw_* ]] && check_equal "$w, $c"
    fi
  done
done

echo "machine: $(nproc) cores, $(uname -r); PostgreSQL $(pgbench --version | awk '{print $3}'), $(pgbouncer --version 2>/dev/null | head -1); turnout workers: $TURNOUT_WORKERS"
echo "pgbench -T $SECONDS_EACH -s $SCALE -M prepared, all on loopback; ratios are tps over direct / over turnout passthrough"
echo
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.2f", a / b; else print "-" }'; }
printf '| %-14s | %-13s | %9s | %8s | %9s | %14s | %s |\n' workload configuration tps "avg ms" "vs direct" "vs passthrough" \
  "secondary work (turnout counters)"
printf '|%s|%s|%s|%s|%s|%s|%s|\n' ---------------- --------------- ----------- ---------- ----------- ---------------- \
  -----------------------------------
for wl in "${WORKLOADS[@]}"; do
  w=${wl%%|*}
  for c in "${CONFIGS[@]}"; do
    t=${TPS[$w,$c]}
    printf '| %-14s | %-13s | %9s | %8s | %9s | %14s | %s |\n' "$w" "$c" \
      "$(awk -v t="$t" 'BEGIN { if (t ~ /^[0-9.]+$/) printf "%.0f", t; else print t }')" "${LAT[$w,$c]}" \
      "$(ratio "$t" "${TPS[$w,direct]}")" "$(ratio "$t" "${TPS[$w,passthrough]}")" "${WORKDONE[$w,$c]:-}"
  done
done
echo
echo "Shadow under tpcb-like mismatches by design: new receives no writes, so its balances stay 0."
echo "Dropped: shadow requests shed by the bounded shadow queue (not sent to new)."
[ "$HISTORY_OK" = 1 ] && echo "Every tpcb-like run: old's pgbench_history holds one row per transaction pgbench counted (+ at most one per client in flight at the end)."
printf '%s\n' "${CHECKS[@]}"
if grep -qiE '"level":"(warn|error)"|\b(WARN|ERROR)\b' "$WORK/turnout.log"; then
  echo "turnout logged warnings or errors (first 10):" >&2
  grep -iE 'warn|error' "$WORK/turnout.log" | head >&2
fi
exit "$FAILED"
