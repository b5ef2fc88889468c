#!/usr/bin/env bash
# The Postgres change stream (control/pg_change_stream.h, issue 10) on two
# local PostgreSQL 15 clusters (the harness': wal_level = logical on both):
#
#   1. initial copy: rows/s of a `data: snapshot` big_bang migration, from
#      /migrate until Completed, on pgbench tables at BENCH_SCALE, against
#      `pg_dump --data-only -t … | psql` into an empty copy of the schema;
#   2. apply and lag: a `data: scan` migration streams while pgbench TPC-B
#      (-c 8 -j 2 -T BENCH_SECONDS) writes to old directly; the stream's lag
#      (admin API, and old's own view of the slot) is sampled every second;
#      then PATCH to big_bang, wait for Completed, and compare every row of
#      the four tables on both sides.
#
#   bench/pg_stream.sh BUILD_DIR         (starts the harness itself when its
#   BENCH_SCALE=20 BENCH_SECONDS=20       environment is not set; defaults)
#   BENCH_WORKERS=2                       the migration's data.workers
#   BENCH_DATA=events BENCH_ROWS=2000000  part 1 only, on one table of
#                                         application events instead (bigserial
#                                         key, two secondary indexes,
#                                         timestamptz, float8, uuid, text):
#                                         the kind of table the change-stream
#                                         issue starts from; pgbench's tables
#                                         (one key, integers and char) are
#                                         the hardest case for the copy
#   BENCH_COPY_ONLY=1                     part 1 only (pg_dump, then the copy
#                                         until the stream phase starts)
#   BENCH_ROUNDS=N                        part 1 only, N times in turn: each
#                                         round's ratio and their median
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:?usage: pg_stream.sh BUILD_DIR}
BUILD=$(cd "$BUILD" && pwd)
if [ -z "${TURNOUT_TEST_PG_OLD_PORT:-}" ]; then
  exec "$ROOT/tests/harness/backends.sh" run -- "$ROOT/bench/pg_stream.sh" "$BUILD"
fi
SCALE=${BENCH_SCALE:-20}
SECS=${BENCH_SECONDS:-20}
WORKERS=${BENCH_WORKERS:-2}
COPY_ONLY=${BENCH_COPY_ONLY:-0}
ROUNDS=${BENCH_ROUNDS:-1}
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "pg_stream: BENCH_ROUNDS is a count, not $ROUNDS" >&2; exit 2; }
[ "$ROUNDS" -gt 1 ] && COPY_ONLY=1
DATA=${BENCH_DATA:-pgbench}
case $DATA in
  pgbench) ;;
  events) COPY_ONLY=1 ;;
  *) echo "pg_stream: BENCH_DATA is pgbench or events, not $DATA" >&2; exit 2 ;;
esac
OLD=$TURNOUT_TEST_PG_OLD_PORT
NEW=$TURNOUT_TEST_PG_NEW_PORT
USER=$TURNOUT_TEST_PG_USER
export PGPASSWORD=$TURNOUT_TEST_PG_PASSWORD PGSSLMODE=disable PGOPTIONS='-c client_min_messages=warning'
DB=stream_bench     # old → new, both migrations
DUMPDB=dump_bench   # new: pg_dump | psql's target
TABLES=(pgbench_accounts pgbench_branches pgbench_tellers pgbench_history)
[ "$DATA" = events ] && TABLES=(events)
declare -A KEY=([pgbench_accounts]=aid [pgbench_branches]=bid [pgbench_tellers]=tid [pgbench_history]=hid)
TOKEN=stream-bench-admin-token-0123456789

WORK=$(mktemp -d /tmp/turnout-stream-bench.XXXXXX)
chmod 0755 "$WORK"
BENCH_PID=""
cleanup() {
  if [ -n "$BENCH_PID" ]; then kill "$BENCH_PID" 2>/dev/null || true; wait "$BENCH_PID" 2>/dev/null || true; fi
  if [ -n "$TURNOUT_PID" ]; then kill "$TURNOUT_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

now() { echo "$EPOCHREALTIME"; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a-b}'; }
BENCH_NAME=pg_stream
# shellcheck source=bench/lib/pg_admin.sh
source "$ROOT/bench/lib/pg_admin.sh"
read -r ADMIN PG1 PG2 < <(free_ports 3)

# die MIGRATION MESSAGE: what the admin API and turnout's log show, then exit 1.
die() {
  echo "pg_stream: $2" >&2
  echo "--- GET /api/v1/migrations/$1 (X-Verbose) ---" >&2
  api GET "/api/v1/migrations/$1" | jq '.data | {state, strategy, progress}' >&2 || true
  echo "--- turnout log (last 60 lines) ---" >&2
  tail -60 "$WORK/turnout.log" >&2 || true
  exit 1
}
state() { jq -r '.data.state' <<<"$1"; }
stream() { jq -c --arg r "$2" '.data.progress.routes[]? | select(.route == $r) | .stream // {}' <<<"$1"; }

# peek PATH: GET PATH into PEEK without starting a process, for the loops
# that time the copy at 20 Hz: curl and three jq per poll took a fifth of the
# two cores from the copy they timed (perf, session 8). peek_field PREFIX:
# the string value after the first match of PREFIX in PEEK, into FIELD (the
# prefixes below are unique in a migration of one route).
peek() {
  local reply
  exec 3<>"/dev/tcp/127.0.0.1/$ADMIN" || return 1
  printf 'GET %s HTTP/1.0\r\nAuthorization: Bearer %s\r\nX-Verbose: true\r\n\r\n' "$1" "$TOKEN" >&3
  IFS= read -r -d '' reply <&3 || true
  exec 3<&-
  [[ $reply == "HTTP/1."?" 2"* ]] || return 1
  PEEK=$reply
}
peek_field() {
  local re="$1\"([^\"]*)\""
  FIELD=""
  if [[ $PEEK =~ $re ]]; then FIELD=${BASH_REMATCH[1]}; fi
}

# --- the data: pgbench tables on old, the same schema (empty) on new --------
for port in "$OLD" "$NEW"; do
  q "$port" postgres "drop database if exists $DB with (force)"
  q "$port" postgres "create database $DB"
done
q "$NEW" postgres "drop database if exists $DUMPDB with (force)"
q "$NEW" postgres "create database $DUMPDB"
if [ "$DATA" = events ]; then
  q "$OLD" "$DB" "create table events (id bigserial primary key, client int not null, n int not null,
    at timestamptz not null default now(), r float8 not null default random(),
    u uuid not null default gen_random_uuid(), note text);
    create index on events (client, at); create index on events (u)"
  q "$OLD" "$DB" "insert into events (client, n, at, note)
    select g % 64, g, now() - g * interval '1 ms', case when g % 3 = 0 then 'note ' || g end
    from generate_series(1, ${BENCH_ROWS:-2000000}) g"
  q "$OLD" "$DB" "vacuum analyze events"
else
  pgbench -i -q -s "$SCALE" "$(conn "$OLD" "$DB")" >"$WORK/pgbench-init.log" 2>&1 \
    || { cat "$WORK/pgbench-init.log" >&2; exit 1; }
fi
# The change stream copies tables with a primary key only (as the copier does;
# docs/data-movement.md); history gets one, as in pg_change_stream_itest.
[ "$DATA" = pgbench ] && q "$OLD" "$DB" "alter table pgbench_history add column hid bigserial primary key"
pg_dump --schema-only "$(conn "$OLD" "$DB")" >"$WORK/schema.sql"
for d in "$DB" "$DUMPDB"; do
  psql -X -q -v ON_ERROR_STOP=1 "$(conn "$NEW" "$d")" -f "$WORK/schema.sql" >/dev/null
done
ROWS=0
for t in "${TABLES[@]}"; do ROWS=$((ROWS + $(q "$OLD" "$DB" "select count(*) from $t"))); done
checkpoint() { q "$OLD" postgres checkpoint; q "$NEW" postgres checkpoint; }

# --- turnout: admin API, one relay route per migration ----------------------
echo "$TOKEN admin bench" >"$WORK/tokens"
cat >"$WORK/turnout.yaml" <<YAML
instance_id: stream-bench
admin:
  listen: 127.0.0.1:$ADMIN
  tokens_file: $WORK/tokens
state_store:
  path: $WORK/state.json
backends:
  - {name: pg-old, protocol: postgres, address: "127.0.0.1:$OLD", user: $USER, password: $PGPASSWORD, database: $DB, tls: {mode: disable}}
  - {name: pg-new, protocol: postgres, address: "127.0.0.1:$NEW", user: $USER, password: $PGPASSWORD, database: $DB, tls: {mode: disable}}
routes:
  - {name: pg1, protocol: postgres, mode: relay, listen: "127.0.0.1:$PG1", old: pg-old}
  - {name: pg2, protocol: postgres, mode: relay, listen: "127.0.0.1:$PG2", old: pg-old}
YAML
"$BUILD/proxy/turnout" --config "$WORK/turnout.yaml" >"$WORK/turnout.log" 2>&1 &
TURNOUT_PID=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$ADMIN/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fs "http://127.0.0.1:$ADMIN/healthz" >/dev/null || { cat "$WORK/turnout.log" >&2; exit 1; }

TABLE_LIST=$(printf '"%s",' "${TABLES[@]}"); TABLE_LIST="[${TABLE_LIST%,}]"
# create ID ROUTE STRATEGY DATA: a migration of ROUTE to pg-new over the four tables.
create() {
  api POST /api/v1/migrations "{\"id\":\"$1\",\"strategy\":$3,\"data\":$4}" >/dev/null
  api POST "/api/v1/migrations/$1/interlay/$2" '{"endpoint":"pg-new"}' >/dev/null
  api POST "/api/v1/migrations/$1/api/tables" "{\"tables\":$TABLE_LIST}" >/dev/null
}
# wait_state ID TIMEOUT_S: until Completed (prints the record) or Failed / RolledBack / timeout.
wait_state() {
  local until=$((SECONDS + $2)) m s
  while :; do
    m=$(api GET "/api/v1/migrations/$1") || die "$1" "GET failed"
    s=$(state "$m")
    [ "$s" = Completed ] && { echo "$m"; return 0; }
    case $s in Failed | RolledBack) die "$1" "migration $1 is $s" ;; esac
    [ $SECONDS -ge "$until" ] && die "$1" "migration $1 not Completed after $2 s (state $s)"
    sleep 0.2
  done
}

# --- 1. initial copy: turnout against pg_dump | psql -------------------------
# copy_round ID: pg_dump | psql into DUMPDB, then turnout's copy by the
# big_bang migration ID (until its stream starts, or Completed); sets DUMP_S,
# COPY_END, COPY_ITSELF, VERIFY_AT, TURNOUT_S and m (the migration record).
DUMP_ARGS=()
for t in "${TABLES[@]}"; do DUMP_ARGS+=(-t "$t"); done
ROUND=0
copy_round() {
  local id=$1 t0 t s phase until
  ROUND=$((ROUND + 1))
  checkpoint
  t0=$(now)
  pg_dump --data-only "${DUMP_ARGS[@]}" "$(conn "$OLD" "$DB")" \
    | psql -X -q -v ON_ERROR_STOP=1 "$(conn "$NEW" "$DUMPDB")" >/dev/null
  DUMP_S=$(sub "$(now)" "$t0")
  # Untimed: what autovacuum would otherwise do to pg_dump's 2,000,000 new
  # rows while turnout's copy runs next, on the same two cores.
  q "$NEW" "$DUMPDB" "vacuum analyze"

  checkpoint
  create "$id" pg1 '{"type":"big_bang"}' "{\"type\":\"snapshot\",\"workers\":$WORKERS}"
  t0=$(now)
  api POST "/api/v1/migrations/$id/migrate" >/dev/null
  COPY_END="" VERIFY_AT="n/a" phase=""
  until=$((SECONDS + 1800))
  while :; do
    peek "/api/v1/migrations/$id" || die "$id" "GET failed"
    t=$EPOCHREALTIME
    peek_field '"state":' && s=$FIELD
    peek_field '"stream":\{"slot":"[^"]*","phase":' && phase=$FIELD
    [ -z "$COPY_END" ] && [[ $phase == streaming || $phase == caught_up ]] && COPY_END=$(sub "$t" "$t0")
    peek_field '"progress":\{"status":'
    [ "$VERIFY_AT" = n/a ] && [ "$FIELD" = verifying ] && VERIFY_AT=$(sub "$t" "$t0")
    [ "$s" = Completed ] && break
    [ "$COPY_ONLY" = 1 ] && [ -n "$COPY_END" ] && break
    case $s in Failed | RolledBack) die "$id" "migration $id is $s" ;; esac
    [ $SECONDS -ge "$until" ] && die "$id" "migration $id not Completed after 1800 s"
    sleep 0.05
  done
  m=$(api GET "/api/v1/migrations/$id") || die "$id" "GET failed"
  TURNOUT_S=$(sub "$(now)" "$t0")
  # The copy itself, as turnout logs it (control/pg_backfill.cc): from the
  # workers' start to the last piece committed, without the slot, the
  # publication and the polling around it. One line per round.
  sleep 0.3
  COPY_ITSELF=$(sed -n 's/.*snapshot copy: [0-9]* rows in \([0-9]*\) ms.*/\1/p' "$WORK/turnout.log" | sed -n "${ROUND}p")
  COPY_ITSELF=$(awk -v ms="${COPY_ITSELF:-0}" 'BEGIN{printf "%.2f", ms / 1000}')
}
# next_round ID: the round's migration Completed and deleted (its slot with
# it), every table on new emptied for the next round's two copies.
next_round() {
  wait_state "$1" 600 >/dev/null
  api DELETE "/api/v1/migrations/$1" >/dev/null
  local list
  list=$(IFS=,; echo "${TABLES[*]}")
  for d in "$DB" "$DUMPDB"; do q "$NEW" "$d" "truncate $list"; done
}

if [ "$DATA" = events ]; then what="events table"; else what="pgbench scale $SCALE"; fi
if [ "$ROUNDS" -gt 1 ]; then
  # pg_dump and turnout's copy in turn, ROUNDS times: each round's ratio
  # and their median (single runs on a shared VM move by tens of percent).
  echo "$what ($ROWS rows), workers $WORKERS, $ROUNDS rounds; load average $(cut -d' ' -f1-3 /proc/loadavg)"
  RATIOS=() ITSELF=()
  for r in $(seq 1 "$ROUNDS"); do
    [ "$r" -gt 1 ] && next_round "copy$((r - 1))"
    copy_round "copy$r"
    RATIOS+=("$(awk -v d="$DUMP_S" -v c="$COPY_END" 'BEGIN{printf "%.2f", d / c}')")
    ITSELF+=("$(awk -v d="$DUMP_S" -v c="$COPY_ITSELF" 'BEGIN{printf "%.2f", (c > 0 ? d / c : 0)}')")
    printf "round %d: pg_dump | psql %s s, copy phase %s s (%s x), the copy itself %s s (%s x)\n" \
      "$r" "$DUMP_S" "$COPY_END" "${RATIOS[-1]}" "$COPY_ITSELF" "${ITSELF[-1]}"
  done
  printf "ratio to pg_dump, median of %d rounds: copy phase %.2f x, copy itself %.2f x\n" \
    "$ROUNDS" "$(median "${RATIOS[@]}")" "$(median "${ITSELF[@]}")"
  exit 0
fi
copy_round copy
COPY_EQUAL=$(jq -r '.data.progress.verification.equal // "n/a"' <<<"$m")
if [ "$COPY_ONLY" = 1 ]; then
  echo "$what ($ROWS rows), workers $WORKERS; load average $(cut -d' ' -f1-3 /proc/loadavg)"
  grep -o 'snapshot copy: .*' "$WORK/turnout.log" || true
  awk -v rows="$ROWS" -v dump="$DUMP_S" -v ce="$COPY_END" -v ci="$COPY_ITSELF" 'BEGIN {
    printf "pg_dump --data-only | psql   %.0f rows/s (%s s)\n", rows / dump, dump
    printf "turnout copy phase           %.0f rows/s (%s s)\n", rows / ce, ce
    printf "of which the copy itself     %.0f rows/s (%s s)\n", (ci > 0 ? rows / ci : 0), ci
    printf "ratio to pg_dump             copy phase %.2f x, copy itself %.2f x\n", dump / ce, (ci > 0 ? dump / ci : 0) }'
  exit 0
fi
for t in "${TABLES[@]}"; do
  a=$(q "$OLD" "$DB" "select count(*) from $t") b=$(q "$NEW" "$DB" "select count(*) from $t")
  [ "$a" = "$b" ] || die copy "after the copy $t has $a rows on old, $b on new"
done

# --- 2. apply throughput and lag under pgbench on old ------------------------
for t in "${TABLES[@]}"; do q "$NEW" "$DB" "truncate $t"; done
checkpoint
create stream pg2 '{"type":"canary","read_percentage":0}' '{"type":"scan"}'
api POST /api/v1/migrations/stream/migrate >/dev/null
until=$((SECONDS + 1800))
while :; do
  m=$(api GET /api/v1/migrations/stream) || die stream "GET failed"
  [ "$(stream "$m" pg2 | jq -r '.phase // ""')" = streaming ] && break
  case $(state "$m") in Failed | RolledBack) die stream "migration stream is $(state "$m")" ;; esac
  [ $SECONDS -ge "$until" ] && die stream "the stream did not reach phase streaming in 1800 s"
  sleep 0.5
done
sleep 2  # the stream's first report after the copy

# One line a second: elapsed, pgbench running (1/0); the admin API's
# lag_bytes, lag_seconds, rows, transactions; old's own view of the slot
# (current WAL − confirmed_flush_lsn, bytes); and new's freshness: age of the
# newest pgbench_history row on new (mtime is set on old; same clock), seconds.
SLOT=$(stream "$m" pg2 | jq -r .slot)
SAMPLES=$WORK/samples.txt
sample() {  # sample T0 RUNNING
  local m s slot fresh
  m=$(api GET /api/v1/migrations/stream) || die stream "GET failed"
  s=$(stream "$m" pg2)
  slot=$(q "$OLD" postgres "select coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn), 0)::bigint from pg_replication_slots where slot_name = '$SLOT'")
  fresh=$(q "$NEW" "$DB" "select coalesce(round(extract(epoch from clock_timestamp() - max(mtime))::numeric, 2), 0) from (select mtime from pgbench_history order by hid desc limit 1) h")
  echo "$(sub "$(now)" "$1") $2 $(jq -r '"\(.lag_bytes) \(.lag_seconds) \(.rows) \(.transactions)"' <<<"$s") ${slot:-0} ${fresh:-0}" | tee -a "$SAMPLES"
}
tick() {  # tick T0 N: sleep until T0 + N seconds
  local d; d=$(awk -v a="$1" -v n="$2" -v t="$(now)" 'BEGIN{d = a + n - t; if (d < 0) d = 0; printf "%.3f", d}')
  sleep "$d"
}
: >"$SAMPLES"
echo "samples: t_s pgbench api_lag_bytes api_lag_s rows txns slot_lag_bytes new_age_s"
t0=$(now)
sample "$t0" 1
pgbench -n -c 8 -j 2 -T "$SECS" "$(conn "$OLD" "$DB")" >"$WORK/pgbench.out" 2>&1 &
BENCH_PID=$!
i=1
while kill -0 "$BENCH_PID" 2>/dev/null; do tick "$t0" "$i"; i=$((i + 1)); sample "$t0" 1; done
rc=0
wait "$BENCH_PID" || rc=$?
BENCH_PID=""
BENCH_END=$(sub "$(now)" "$t0")
[ "$rc" = 0 ] || { cat "$WORK/pgbench.out" >&2; die stream "pgbench failed"; }
# Caught up: old's slot confirmed to its current WAL position (the admin
# API's lag can read 0 while the stream is behind: the time it first did is
# reported beside it).
CAUGHT="" API_CAUGHT=""
while [ $i -lt $((SECS + 600)) ]; do
  tick "$t0" "$i"; i=$((i + 1))
  line=$(sample "$t0" 0) || exit 1
  echo "$line"
  read -r el _ lb ls _ _ sl _ <<<"$line"
  [ -z "$API_CAUGHT" ] && [ "$lb" = 0 ] && awk -v s="$ls" 'BEGIN{exit !(s == 0)}' && API_CAUGHT=$el
  if [ "$sl" = 0 ] && [ -n "$API_CAUGHT" ]; then CAUGHT=$el; break; fi
done
[ -n "$CAUGHT" ] || die stream "lag did not reach 0 within 600 s of pgbench's end"
TPS=$(awk '/^tps = /{print $3; exit}' "$WORK/pgbench.out")
FAILED=$(awk -F': ' '/number of failed transactions/{print $2; exit}' "$WORK/pgbench.out")
read -r ROWS_APPLIED APPLY_RATE LAGB_MAX LAGS_MAX SLOTB_MAX SLOTB_P50 AGE_MAX AGE_P50 < <(awk -v caught="$CAUGHT" '
  NR == 1 {r0 = $5; t0 = $1}
  $1 <= caught {r1 = $5; t1 = $1}
  $2 == 1 {n++; sb[n] = $7; ag[n] = $8; if ($3 > mb) mb = $3; if ($4 > ms) ms = $4; if ($7 > msb) msb = $7; if ($8 > mag) mag = $8}
  function p50(a, n,   i, j, x) { for (i = 2; i <= n; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x } return a[int((n + 1) / 2)] }
  END {printf "%d %.0f %d %.2f %d %d %.2f %.2f\n", r1 - r0, (r1 - r0) / (t1 - t0), mb, ms, msb, p50(sb, n), mag, p50(ag, n)}
' "$SAMPLES")

# When the stream keeps up with pgbench, its rows/s above is the offered load.
# Its ceiling: pause the migration, let the same pgbench build a backlog on
# the slot, resume, and time until every row change of it is applied.
rows_of() { jq -r '.rows' <<<"$(stream "$(api GET /api/v1/migrations/stream)" pg2)"; }
api POST /api/v1/migrations/stream/pause >/dev/null
sleep 2
R0=$(rows_of)
pgbench -n -c 8 -j 2 -T "$SECS" "$(conn "$OLD" "$DB")" >"$WORK/pgbench-backlog.out" 2>&1 \
  || { cat "$WORK/pgbench-backlog.out" >&2; die stream "pgbench (backlog) failed"; }
BACKLOG_TX=$(awk '/number of transactions actually processed/{print $NF; exit}' "$WORK/pgbench-backlog.out")
BACKLOG_TX=${BACKLOG_TX%%/*}
BACKLOG_ROWS=$((4 * BACKLOG_TX))  # TPC-B: three updates and one insert
BACKLOG_WAL=$(q "$OLD" postgres "select pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint from pg_replication_slots where slot_name = '$SLOT'")
t2=$(now)
api POST /api/v1/migrations/stream/resume >/dev/null
until=$((SECONDS + 900))
while [ "$(rows_of)" -lt $((R0 + BACKLOG_ROWS)) ]; do
  [ $SECONDS -ge "$until" ] && die stream "the backlog of $BACKLOG_ROWS row changes was not applied within 900 s"
  sleep 0.2
done
DRAIN_S=$(sub "$(now)" "$t2")
echo "backlog: $BACKLOG_TX transactions, $BACKLOG_ROWS row changes, $BACKLOG_WAL bytes of WAL; applied $DRAIN_S s after resume"

t1=$(now)
api PATCH /api/v1/migrations/stream '{"strategy":{"type":"big_bang"}}' >/dev/null
m=$(wait_state stream 600) || exit 1
FINISH_S=$(sub "$(now)" "$t1")
STREAM_EQUAL=$(jq -r '.data.progress.verification.equal // "n/a"' <<<"$m")
VERDICT=MATCH
declare -A SUMS
for t in "${TABLES[@]}"; do
  for side in "$OLD" "$NEW"; do
    SUMS[$t,$side]=$(psql -X -q -tA -v ON_ERROR_STOP=1 "$(conn "$side" "$DB")" \
      -c "select t::text from $t t order by ${KEY[$t]}" | md5sum | cut -c1-32)
  done
  n=$(q "$OLD" "$DB" "select count(*) from $t")
  if [ "${SUMS[$t,$OLD]}" = "${SUMS[$t,$NEW]}" ]; then r=MATCH; else r=DIFFER; VERDICT=DIFFER; fi
  printf 'compare %-17s %9s rows  old %s  new %s  %s\n' "$t" "$n" "${SUMS[$t,$OLD]}" "${SUMS[$t,$NEW]}" "$r"
done

echo
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r); load average $(cut -d' ' -f1-3 /proc/loadavg); PostgreSQL $(q "$OLD" postgres 'show server_version' | cut -d' ' -f1)"
echo "pgbench scale $SCALE ($ROWS rows in ${TABLES[*]}), TPC-B -c 8 -j 2 -T $SECS on old; both clusters, turnout and pgbench on this machine"
echo
awk -v rows="$ROWS" -v dump="$DUMP_S" -v tt="$TURNOUT_S" -v ce="$COPY_END" -v ci="$COPY_ITSELF" -v workers="$WORKERS" -v va="$VERIFY_AT" -v eq="$COPY_EQUAL" \
    -v tps="$TPS" -v failed="$FAILED" -v applied="$ROWS_APPLIED" -v rate="$APPLY_RATE" \
    -v lbm="$LAGB_MAX" -v lsm="$LAGS_MAX" -v sbm="$SLOTB_MAX" -v sbp="$SLOTB_P50" -v agm="$AGE_MAX" -v agp="$AGE_P50" \
    -v end="$BENCH_END" -v caught="$CAUGHT" -v acaught="$API_CAUGHT" -v fin="$FINISH_S" -v brows="$BACKLOG_ROWS" -v drain="$DRAIN_S" -v seq="$STREAM_EQUAL" -v verdict="$VERDICT" '
BEGIN {
  printf "| %-50s | %s |\n", "figure", "value"
  printf "|%s|%s|\n", "----------------------------------------------------", "------------------------------------------"
  printf "| %-50s | %.0f rows/s (%s s) |\n", "pg_dump --data-only | psql", rows / dump, dump
  printf "| %-50s | %.0f rows/s (%s s; copy done at %s s, verify from %s s; verifier equal: %s) |\n", "turnout data: snapshot, /migrate to Completed", rows / tt, tt, ce, va, eq
  printf "| %-50s | %.0f rows/s (%s s, %d workers) |\n", "the copy itself (turnout log)", (ci > 0 ? rows / ci : 0), ci, workers
  printf "| %-50s | %.2f x (copy phase: %.2f x; the copy itself: %.2f x) |\n", "ratio turnout / pg_dump", dump / tt, (ce > 0 ? dump / ce : 0), (ci > 0 ? dump / ci : 0)
  printf "| %-50s | %.0f tps (%s failed), %.0f row changes/s |\n", "pgbench TPC-B on old", tps, failed, 4 * tps
  printf "| %-50s | %.0f rows/s (%d rows) |\n", "stream applied, pgbench start to lag 0", rate, applied
  printf "| %-50s | %.0f rows/s (%d rows, %s s after resume) |\n", "stream applying a backlog (paused during pgbench)", brows / drain, brows, drain
  printf "| %-50s | %d / %d bytes |\n", "lag max / p50 while pgbench ran, old slot", sbm, sbp
  printf "| %-50s | %.2f / %.2f s |\n", "lag max / p50 while pgbench ran, age on new", agm, agp
  printf "| %-50s | %d bytes, %.2f s |\n", "lag max while pgbench ran, admin API", lbm, lsm
  printf "| %-50s | %.1f s (admin API read 0 after %.1f s) |\n", "pgbench end to lag 0 (old slot)", caught - end, acaught - end
  printf "| %-50s | %s s (verifier equal: %s) |\n", "PATCH big_bang to Completed", fin, seq
  printf "| %-50s | %s |\n", "all four tables, old vs new (md5 of rows)", verdict
}'
[ "$VERDICT" = MATCH ]
