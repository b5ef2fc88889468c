#!/usr/bin/env bash
# Verification and repair by rows on the harness' two local PostgreSQL 15
# clusters, in one run (issue "Verification that names the differing rows"):
#
#   1. a full POST …/verify of pgbench's accounts, branches and tellers at
#      scale BENCH_SCALE (default 50: 5,000,000 accounts), equal on both
#      sides: seconds and rows/s (per side; both sides are read at once)
#   2. its cost to concurrent work: select-only pgbench -c 8 on old for
#      BENCH_SECONDS, alone, while a continuous verify runs throttled to
#      BENCH_VERIFY_RPS rows/s (default 100000), and while an unthrottled
#      one-off verify runs; tps and the ratio to alone
#   3. the admin port while POST …/repair repairs 1,000,000 rows that differ
#      on new (no journal entry names them: the verifier finds them):
#      /healthz and /metrics answer times (p50, p99, max) and the repair's
#      own time
#
#   bench/pg_verify.sh BUILD_DIR    (starts the harness itself when its
#                                    environment is not set)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:?usage: pg_verify.sh BUILD_DIR}
BUILD=$(cd "$BUILD" && pwd)
if [ -z "${TURNOUT_TEST_PG_OLD_PORT:-}" ]; then
  exec "$ROOT/tests/harness/backends.sh" run -- "$ROOT/bench/pg_verify.sh" "$BUILD"
fi
SCALE=${BENCH_SCALE:-50}
SECS=${BENCH_SECONDS:-15}
RPS=${BENCH_VERIFY_RPS:-100000}
OLD=$TURNOUT_TEST_PG_OLD_PORT
NEW=$TURNOUT_TEST_PG_NEW_PORT
USER=$TURNOUT_TEST_PG_USER
export PGPASSWORD=$TURNOUT_TEST_PG_PASSWORD PGSSLMODE=disable PGOPTIONS='-c client_min_messages=warning'
DB=verify_bench
TOKEN=verify-bench-admin-token-0123456789abc
TABLES='["pgbench_accounts","pgbench_branches","pgbench_tellers"]'

WORK=$(mktemp -d /tmp/turnout-verify-bench.XXXXXX)
chmod 0755 "$WORK"
BENCH_NAME=pg_verify
# shellcheck source=bench/lib/pg_admin.sh
source "$ROOT/bench/lib/pg_admin.sh"
read -r ADMIN PG < <(free_ports 2)
BG_PID=""
cleanup() {
  if [ -n "$BG_PID" ]; then kill "$BG_PID" 2>/dev/null || true; wait "$BG_PID" 2>/dev/null || true; fi
  if [ -n "$TURNOUT_PID" ]; then kill "$TURNOUT_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{ printf "%.1f", b - a }'; }

# The same pgbench data on both sides (pgbench -i is deterministic).
for port in "$OLD" "$NEW"; do
  q "$port" postgres "drop database if exists $DB with (force)"
  q "$port" postgres "create database $DB"
  pgbench -i -q -s "$SCALE" "$(conn "$port" "$DB")" >"$WORK/init.log" 2>&1 || { cat "$WORK/init.log" >&2; exit 1; }
done
ROWS=$((SCALE * 100000 + SCALE * 10 + SCALE))

start_turnout verify-bench
api POST /api/v1/migrations '{"id":"v","strategy":{"type":"canary","read_percentage":0},"data":{"type":"none"}}' >/dev/null
api POST /api/v1/migrations/v/interlay/pg '{"endpoint":"pg-new"}' >/dev/null
api POST /api/v1/migrations/v/api/tables "{\"tables\":$TABLES}" >/dev/null
api POST /api/v1/migrations/v/migrate >/dev/null

# 1. A full verify.
t0=$(now)
report=$(api POST /api/v1/migrations/v/verify) || die "verify failed"
VERIFY_S=$(since "$t0")
[ "$(jq -r .data.equal <<<"$report")" = true ] || die "the sides differ before the bench: $(jq -c .data <<<"$report" | head -c 2000)"
VERIFY_RPS=$(awk -v r="$ROWS" -v s="$VERIFY_S" 'BEGIN{ printf "%.0f", r / s }')
echo "full verify: $ROWS rows per side in $VERIFY_S s" >&2

# 2. Its cost to select-only pgbench on old.
select_tps() {
  local out
  out=$(pgbench -n -S -c 8 -j 2 -T "$SECS" "$(conn "$OLD" "$DB")" 2>&1) || { echo "$out" >&2; die "pgbench failed"; }
  sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$out"
}
ALONE=$(select_tps)
api PATCH /api/v1/migrations/v \
  "{\"data\":{\"type\":\"none\",\"verify\":{\"continuous\":true,\"interval_s\":5,\"rows_per_second\":$RPS}}}" >/dev/null
for _ in $(seq 1 100); do  # until a run is under way
  [ "$(api GET /api/v1/migrations/v | jq -r '.data.progress.continuous_verification.progress.rows // 0')" != 0 ] && break
  sleep 0.2
done
THROTTLED=$(select_tps)
api PATCH /api/v1/migrations/v '{"data":{"type":"none"}}' >/dev/null
api POST /api/v1/migrations/v/verify >"$WORK/verify2.json" &
BG_PID=$!
sleep 1
UNTHROTTLED=$(select_tps)
wait "$BG_PID" || die "the second verify failed"
BG_PID=""

# 3. Probes during a repair of 1,000,000 rows nobody journaled (fewer below
# scale 10).
DIFF=$((SCALE * 100000 < 1000000 ? SCALE * 100000 : 1000000))
q "$NEW" "$DB" "update pgbench_accounts set abalance = -1 where aid <= $DIFF"
t0=$(now)
api POST /api/v1/migrations/v/repair >"$WORK/repair.json" &
BG_PID=$!
: >"$WORK/probes.txt"
while kill -0 "$BG_PID" 2>/dev/null; do
  for path in /healthz /metrics; do
    curl -s -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$ADMIN$path" >>"$WORK/probes.txt" || true
  done
  sleep 0.05
done
wait "$BG_PID" || die "repair failed: $(cat "$WORK/repair.json")"
BG_PID=""
REPAIR_S=$(since "$t0")
jq -e '.data.postgres_equal == true' "$WORK/repair.json" >/dev/null || die "repair left differences: $(head -c 2000 "$WORK/repair.json")"
UPSERTED=$(jq '[.data.tables_repaired[] | select(.table == "public.pgbench_accounts") | .upserted] | add // 0' "$WORK/repair.json")
read -r N P50 P99 MAX < <(sort -n "$WORK/probes.txt" | awk '{ v[NR] = $1 } END {
  p50 = v[int((NR + 1) * 0.50)]; p99 = v[int((NR - 1) * 0.99) + 1];
  printf "%d %.1f %.1f %.1f\n", NR, p50 * 1000, p99 * 1000, v[NR] * 1000 }')
stop_turnout

cat <<EOF

### Verification and repair by rows (pgbench scale $SCALE: accounts, branches, tellers)

Full verify: $ROWS rows per side in $VERIFY_S s, $VERIFY_RPS rows/s per side (both sides read at once).

| select-only pgbench -c 8 on old | tps | ratio |
|---|---|---|
| alone | $ALONE | 1.00 |
| continuous verify, throttled to $RPS rows/s | $THROTTLED | $(ratio "$THROTTLED" "$ALONE") |
| one-off verify, unthrottled | $UNTHROTTLED | $(ratio "$UNTHROTTLED" "$ALONE") |

Repair of $DIFF differing rows nobody journaled (found by the verifier, $UPSERTED rows re-copied): $REPAIR_S s.
Admin port during it, $N answers of /healthz and /metrics: p50 $P50 ms, p99 $P99 ms, max $MAX ms.
EOF
