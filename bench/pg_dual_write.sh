#!/usr/bin/env bash
# Postgres dual-write by change stream against passthrough, in one run, on
# the harness' two local PostgreSQL 15 clusters (issue "Postgres dual-write
# and cutover on the change stream"):
#
#   1. pgbench TPC-B (-c 8 and -c 1, BENCH_SECONDS each) through turnout's
#      protocol route: passthrough (no migration), sync stream dual-write,
#      async stream dual-write, statement dual-write (data.method copy);
#      tps and the ratio to passthrough
#   2. the write hold of a cutover (PATCH to big_bang) at idle and under
#      pgbench -c 8, from the migration record (cutover.hold_ms)
#
# Old runs with synchronous_commit = on in the bench database (a commit
# reaches the stream once flushed; the harness' default is off).
#
#   bench/pg_dual_write.sh BUILD_DIR       (starts the harness itself when
#   BENCH_SCALE=10 BENCH_SECONDS=10         its environment is not set)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:?usage: pg_dual_write.sh BUILD_DIR}
BUILD=$(cd "$BUILD" && pwd)
if [ -z "${TURNOUT_TEST_PG_OLD_PORT:-}" ]; then
  exec "$ROOT/tests/harness/backends.sh" run -- "$ROOT/bench/pg_dual_write.sh" "$BUILD"
fi
SCALE=${BENCH_SCALE:-10}
SECS=${BENCH_SECONDS:-10}
OLD=$TURNOUT_TEST_PG_OLD_PORT
NEW=$TURNOUT_TEST_PG_NEW_PORT
USER=$TURNOUT_TEST_PG_USER
export PGPASSWORD=$TURNOUT_TEST_PG_PASSWORD PGSSLMODE=disable PGOPTIONS='-c client_min_messages=warning'
DB=dw_bench
TABLES=(pgbench_accounts pgbench_branches pgbench_tellers pgbench_history)
TOKEN=dual-write-bench-admin-token-0123456789

WORK=$(mktemp -d /tmp/turnout-dw-bench.XXXXXX)
chmod 0755 "$WORK"
BENCH_NAME=pg_dual_write
# shellcheck source=bench/lib/pg_admin.sh
source "$ROOT/bench/lib/pg_admin.sh"
read -r ADMIN PG < <(free_ports 2)
LOAD_PID=""
cleanup() {
  if [ -n "$LOAD_PID" ]; then kill "$LOAD_PID" 2>/dev/null || true; wait "$LOAD_PID" 2>/dev/null || true; fi
  if [ -n "$TURNOUT_PID" ]; then kill "$TURNOUT_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# reset: old with pgbench tables (history keyed), new with the schema only.
reset() {
  for port in "$OLD" "$NEW"; do
    q "$port" postgres "drop database if exists $DB with (force)"
    q "$port" postgres "create database $DB"
  done
  q "$OLD" postgres "alter database $DB set synchronous_commit = on"
  pgbench -i -q -s "$SCALE" "$(conn "$OLD" "$DB")" >"$WORK/init.log" 2>&1 || { cat "$WORK/init.log" >&2; exit 1; }
  q "$OLD" "$DB" "alter table pgbench_history add column hid bigserial primary key"
  pg_dump --schema-only "$(conn "$OLD" "$DB")" >"$WORK/schema.sql"
  psql -X -q -v ON_ERROR_STOP=1 "$(conn "$NEW" "$DB")" -f "$WORK/schema.sql" >/dev/null
}

TABLE_LIST=$(printf '"%s",' "${TABLES[@]}"); TABLE_LIST="[${TABLE_LIST%,}]"
# migrate ID STRATEGY DATA: created, routed, scoped, started; waits until the
# stream streams (or, with method copy, until the copy is done).
migrate() {
  api POST /api/v1/migrations "{\"id\":\"$1\",\"strategy\":$2,\"data\":$3}" >/dev/null
  api POST "/api/v1/migrations/$1/interlay/pg" '{"endpoint":"pg-new"}' >/dev/null
  api POST "/api/v1/migrations/$1/api/tables" "{\"tables\":$TABLE_LIST}" >/dev/null
  api POST "/api/v1/migrations/$1/migrate" >/dev/null
  local until=$((SECONDS + 300)) m
  while :; do
    m=$(api GET "/api/v1/migrations/$1") || die "GET $1"
    [ "$(jq -r '[.data.progress.routes[]?.stream.phase] | first // ""' <<<"$m")" = streaming ] && return 0
    [ "$(jq -r '[.data.progress.routes[]?.phase] | first // ""' <<<"$m")" = done ] && return 0
    [ "$(jq -r .data.state <<<"$m")" = Failed ] && die "migration $1 failed: $(jq -c .data.progress <<<"$m")"
    [ $SECONDS -ge $until ] && die "migration $1 did not start streaming"
    sleep 0.2
  done
}
# tps CLIENTS: pgbench TPC-B through turnout for SECS seconds.
tps() {
  local out
  out=$(pgbench -n -c "$1" -j "$(( $1 < 2 ? 1 : 2 ))" -T "$SECS" -h 127.0.0.1 -p "$PG" "$DB" 2>&1) || { echo "$out" >&2; die "pgbench failed"; }
  grep -q "number of failed transactions: 0" <<<"$out" || { echo "$out" >&2; die "pgbench: failed transactions"; }
  sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$out"
}

declare -A TPS
run_mode() {  # NAME STRATEGY DATA (empty: no migration)
  reset
  start_turnout dw-bench
  [ -n "$2" ] && migrate "m_$1" "$2" "$3"
  TPS[$1,8]=$(tps 8)
  TPS[$1,1]=$(tps 1)
  stop_turnout
  echo "$1: -c 8 ${TPS[$1,8]} tps, -c 1 ${TPS[$1,1]} tps" >&2
}

SYNC='{"type":"canary","read_percentage":0,"write_mode":{"mode":"dual_write","policy":"old_authoritative","apply":"sync"}}'
ASYNC='{"type":"canary","read_percentage":0,"write_mode":{"mode":"dual_write","policy":"old_authoritative","apply":"async"}}'
run_mode passthrough "" ""
run_mode stream_sync "$SYNC" '{"type":"scan"}'
run_mode stream_async "$ASYNC" '{"type":"scan"}'
run_mode statement_sync "$SYNC" '{"type":"scan","method":"copy"}'

# The write hold of a cutover: at idle, then under pgbench -c 8.
hold() {  # LOADED(0|1)
  reset
  start_turnout dw-bench
  migrate "cut$1" "$SYNC" '{"type":"scan"}'
  if [ "$1" = 1 ]; then
    pgbench -n -c 8 -j 2 -T $((SECS + 5)) -h 127.0.0.1 -p "$PG" "$DB" >"$WORK/hold-load.log" 2>&1 &
    LOAD_PID=$!
    sleep 3
  fi
  api PATCH "/api/v1/migrations/cut$1" '{"strategy":{"type":"big_bang"}}' >/dev/null
  local until=$((SECONDS + 120)) m phase
  while :; do
    m=$(api GET "/api/v1/migrations/cut$1") || die "GET cut$1"
    phase=$(jq -r '.data.cutover.phase // ""' <<<"$m")
    [ "$phase" = done ] && break
    [ "$phase" = abandoned ] && die "cutover abandoned: $(jq -c .data.cutover <<<"$m")"
    [ $SECONDS -ge $until ] && die "cutover did not end"
    sleep 0.1
  done
  if [ -n "$LOAD_PID" ]; then
    wait "$LOAD_PID" || { cat "$WORK/hold-load.log" >&2; die "pgbench under the cutover failed"; }
    LOAD_PID=""
    grep -q "number of failed transactions: 0" "$WORK/hold-load.log" || die "pgbench: failed transactions during the cutover"
  fi
  stop_turnout
  jq -r .data.cutover.hold_ms <<<"$m"
}
HOLD_IDLE=$(hold 0)
HOLD_LOAD=$(hold 1)

P8=${TPS[passthrough,8]} P1=${TPS[passthrough,1]}
cat <<EOF

### Postgres dual-write by change stream (pgbench TPC-B, scale $SCALE, ${SECS} s each, synchronous_commit on)

| mode | -c 8 tps | ratio | -c 1 tps | ratio |
|---|---|---|---|---|
| passthrough (no migration) | $P8 | 1.00 | $P1 | 1.00 |
| stream dual-write, sync | ${TPS[stream_sync,8]} | $(ratio "${TPS[stream_sync,8]}" "$P8") | ${TPS[stream_sync,1]} | $(ratio "${TPS[stream_sync,1]}" "$P1") |
| stream dual-write, async | ${TPS[stream_async,8]} | $(ratio "${TPS[stream_async,8]}" "$P8") | ${TPS[stream_async,1]} | $(ratio "${TPS[stream_async,1]}" "$P1") |
| statement dual-write, sync | ${TPS[statement_sync,8]} | $(ratio "${TPS[statement_sync,8]}" "$P8") | ${TPS[statement_sync,1]} | $(ratio "${TPS[statement_sync,1]}" "$P1") |

Cutover write hold (one sidecar): ${HOLD_IDLE} ms at idle, ${HOLD_LOAD} ms under pgbench -c 8.
EOF
