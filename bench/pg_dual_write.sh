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
#   BENCH_MODES="passthrough stream_sync"   only these modes (for an A/B)
#   BENCH_HOLD=0                            no cutover write hold
#   BENCH_ROUNDS=3                          the modes in turn, three times:
#                                           the table shows each mode's
#                                           median, stderr each round's ratio
#   BENCH_PGBENCH_ARGS="-M extended -f F"   another workload than TPC-B (the
#                                           ratios then compare that one)
#   BENCH_OLD_FSYNC=on                      old flushes to disk (the harness
#                                           runs with fsync off): what a WAL
#                                           flush per commit costs, as on a
#                                           production source
#   BENCH_NEW_FSYNC=on                      new too (the applier's commits)
#   BENCH_PERF=DIR                          a perf profile of the machine per
#                                           run (DIR/all-MODE-cN.perf, with
#                                           DIR/ps-MODE-cN.txt for its pids)
#
# Under each stream mode it also prints, per pgbench run, the mean commit
# hold (turnout_stream_commit_hold_seconds), old's transactions per pgbench
# transaction beyond the bench's own (samples and fences: the feeder's
# queries), the CPU left idle (vmstat) and the CPU per old commit of each
# kind of process (bench/lib/cpu_split.py), so a run says where time went.
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
# fsync_ports: the clusters that flush to disk in this run.
fsync_ports() {
  [ "${BENCH_OLD_FSYNC:-off}" = on ] && echo "$OLD"
  [ "${BENCH_NEW_FSYNC:-off}" = on ] && echo "$NEW"
  true
}
cleanup() {
  for port in $(fsync_ports); do
    q "$port" postgres "alter system reset fsync" 2>/dev/null || true
    q "$port" postgres "select pg_reload_conf()" >/dev/null 2>&1 || true
  done
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
  for port in $(fsync_ports); do
    q "$port" postgres "alter system set fsync = on"
    q "$port" postgres "select pg_reload_conf()" >/dev/null
  done
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
# hold_stats: "<count> <sum seconds>" of the commit hold so far.
hold_stats() {
  curl -fs -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$ADMIN/metrics" |
    awk '/^turnout_stream_commit_hold_seconds_count/ {c = $2} /^turnout_stream_commit_hold_seconds_sum/ {s = $2}
         END {print c + 0, s + 0}'
}
# wal_stats PORT: "bytes|records|writes" of the cluster's WAL so far.
wal_stats() { q "$1" postgres "select wal_bytes || '|' || wal_records || '|' || wal_write from pg_stat_wal"; }
old_commits() { q "$OLD" postgres "select sum(xact_commit) from pg_stat_database"; }
# tps CLIENTS: pgbench TPC-B through turnout for SECS seconds; the figures
# of the run on stderr.
tps() {
  local out h0 h1 c0 c1 n idle
  read -r -a h0 < <(hold_stats)
  c0=$(old_commits)
  vmstat 1 "$SECS" >"$WORK/vmstat.log" &
  local vm=$!
  cpu_window "$1" >"$WORK/cpu.log" &
  local cw=$!
  # shellcheck disable=SC2086  # BENCH_PGBENCH_ARGS is split on purpose
  out=$(pgbench -n ${BENCH_PGBENCH_ARGS:-} -c "$1" -j "$(( $1 < 2 ? 1 : 2 ))" -T "$SECS" -h 127.0.0.1 -p "$PG" "$DB" 2>&1) || { echo "$out" >&2; die "pgbench failed"; }
  wait "$vm" || true
  wait "$cw" || true
  grep -q "number of failed transactions: 0" <<<"$out" || { echo "$out" >&2; die "pgbench: failed transactions"; }
  c1=$(old_commits)
  read -r -a h1 < <(hold_stats)
  n=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")
  idle=$(awk 'NR > 3 {s += $15; k++} END {if (k) printf "%.0f", s / k}' "$WORK/vmstat.log")
  awk -v c="$1" -v n="$n" -v d="$((c1 - c0))" -v hc="$((h1[0] - h0[0]))" -v hs="${h1[1]}" -v hs0="${h0[1]}" -v idle="$idle" \
    'BEGIN {printf "  -c %d: %d txns, old commits/txn %.2f, holds %d mean %.0f us, cpu idle %s%%\n",
            c, n, n ? d / n : 0, hc, hc ? (hs - hs0) / hc * 1e6 : 0, idle}' >&2
  sed 's/^/    /' "$WORK/cpu.log" >&2
  sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$out"
}
# cpu_window: CPU per old commit by process kind (bench/lib/cpu_split.py)
# over the middle of a pgbench run, while its connections live.
cpu_window() {
  local c0 c1
  sleep 2
  c0=$(old_commits)
  local w0 w1
  w0=$(wal_stats "$NEW")
  python3 "$ROOT/bench/lib/cpu_split.py" snap "$WORK/cpu0.json" "$OLD" "$NEW" "$TURNOUT_PID"
  # BENCH_PERF=DIR: a perf profile of every process over the window.
  if [ -n "${BENCH_PERF:-}" ]; then
    ps -eo pid,args >"$BENCH_PERF/ps-$BENCH_MODE-c$1.txt"
    perf record -q -a -g -F 1999 -o "$BENCH_PERF/all-$BENCH_MODE-c$1.perf" -- \
      sleep $((SECS > 6 ? SECS - 5 : 1)) >/dev/null 2>&1
  else
    sleep $((SECS > 6 ? SECS - 5 : 1))
  fi
  c1=$(old_commits)
  w1=$(wal_stats "$NEW")
  python3 "$ROOT/bench/lib/cpu_split.py" snap "$WORK/cpu1.json" "$OLD" "$NEW" "$TURNOUT_PID"
  python3 "$ROOT/bench/lib/cpu_split.py" diff "$WORK/cpu0.json" "$WORK/cpu1.json" "$((c1 - c0))"
  awk -v a="$w0" -v b="$w1" -v n="$((c1 - c0))" 'BEGIN {split(a, x, "|"); split(b, y, "|"); if (n < 1) n = 1
    printf "new'"'"'s WAL per old commit: %.0f bytes in %.1f records, %.2f writes\n",
           (y[1] - x[1]) / n, (y[2] - x[2]) / n, (y[3] - x[3]) / n}'
}

# TPS[mode,clients,round]; TPS[mode,clients] is the median of the rounds.
declare -A TPS
run_mode() {  # NAME STRATEGY DATA (empty: no migration) ROUND
  BENCH_MODE=$1
  reset
  start_turnout dw-bench
  [ -n "$2" ] && migrate "m_$1" "$2" "$3"
  TPS[$1,8,$4]=$(tps 8)
  TPS[$1,1,$4]=$(tps 1)
  stop_turnout
  echo "$1 (round $4): -c 8 ${TPS[$1,8,$4]} tps, -c 1 ${TPS[$1,1,$4]} tps" >&2
}

SYNC='{"type":"canary","read_percentage":0,"write_mode":{"mode":"dual_write","policy":"old_authoritative","apply":"sync"}}'
ASYNC='{"type":"canary","read_percentage":0,"write_mode":{"mode":"dual_write","policy":"old_authoritative","apply":"async"}}'
MODES=${BENCH_MODES:-passthrough stream_sync stream_async statement_sync}
ROUNDS=${BENCH_ROUNDS:-1}
for round in $(seq 1 "$ROUNDS"); do
  for mode in $MODES; do
    case $mode in
      passthrough) run_mode passthrough "" "" "$round" ;;
      stream_sync) run_mode stream_sync "$SYNC" '{"type":"scan"}' "$round" ;;
      stream_async) run_mode stream_async "$ASYNC" '{"type":"scan"}' "$round" ;;
      statement_sync) run_mode statement_sync "$SYNC" '{"type":"scan","method":"copy"}' "$round" ;;
      *) die "unknown mode $mode" ;;
    esac
  done
done
# Each mode's ratio to the passthrough of the same round, then the medians.
RATIOS=""
for mode in $MODES; do
  [ "$mode" = passthrough ] && continue
  for c in 8 1; do
    line="$mode -c $c:" each=()
    for round in $(seq 1 "$ROUNDS"); do
      each+=("$(ratio "${TPS[$mode,$c,$round]:-0}" "${TPS[passthrough,$c,$round]:-0}")")
    done
    RATIOS+="$line ${each[*]} (median $(median "${each[@]}"))"$'\n'
  done
done
for mode in $MODES; do
  for c in 8 1; do
    rounds=()
    for round in $(seq 1 "$ROUNDS"); do rounds+=("${TPS[$mode,$c,$round]}"); done
    TPS[$mode,$c]=$(median "${rounds[@]}")
  done
done
[ "$ROUNDS" -gt 1 ] && printf 'ratio to passthrough per round:\n%s' "$RATIOS" >&2
[ "${BENCH_HOLD:-1}" = 0 ] && exit 0

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

### Postgres dual-write by change stream (pgbench TPC-B, scale $SCALE, ${SECS} s each, synchronous_commit on, fsync ${BENCH_OLD_FSYNC:-off} on old, ${BENCH_NEW_FSYNC:-off} on new)

| mode | -c 8 tps | ratio | -c 1 tps | ratio |
|---|---|---|---|---|
| passthrough (no migration) | $P8 | 1.00 | $P1 | 1.00 |
| stream dual-write, sync | ${TPS[stream_sync,8]} | $(ratio "${TPS[stream_sync,8]}" "$P8") | ${TPS[stream_sync,1]} | $(ratio "${TPS[stream_sync,1]}" "$P1") |
| stream dual-write, async | ${TPS[stream_async,8]} | $(ratio "${TPS[stream_async,8]}" "$P8") | ${TPS[stream_async,1]} | $(ratio "${TPS[stream_async,1]}" "$P1") |
| statement dual-write, sync | ${TPS[statement_sync,8]} | $(ratio "${TPS[statement_sync,8]}" "$P8") | ${TPS[statement_sync,1]} | $(ratio "${TPS[statement_sync,1]}" "$P1") |

Cutover write hold (one sidecar): ${HOLD_IDLE} ms at idle, ${HOLD_LOAD} ms under pgbench -c 8.
EOF
if [ "$ROUNDS" -gt 1 ]; then printf '\nRatio to the passthrough of the same round (%s rounds, modes in turn):\n\n%s' "$ROUNDS" "$RATIOS"; fi
