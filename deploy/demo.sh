#!/usr/bin/env bash
# make demo: two Postgres and two Redis servers on loopback (old and new),
# turnout in front of them with the example configuration and the embedded
# file state store, and an application load through turnout for the whole
# walk-through: pgbench (TPC-B) on the Postgres route and a Redis writer on
# the Redis route. A canary migration is walked through its stages with
# `turnout ctl`:
#
#   1. new holds the schema only; /migrate moves the data (Postgres: initial
#      copy and change stream; Redis: SCAN, DUMP, RESTORE) while the load
#      runs, with sync dual-write (a COMMIT the client sees is on new);
#   2. canary reads at 5 %, 25 %, 75 %; `ctl verify` finds both sides equal;
#   3. the cutover (PATCH to big_bang) under load: writes are held for a
#      moment, then flow to new; the migration completes;
#   4. every write the application was told succeeded is counted on new:
#      pgbench's transactions against pgbench_history, the writer's keys
#      against their values. None missing, or the demo exits non-zero.
#
# DEMO_KEEP=1 leaves everything running until Ctrl-C. DEMO_SCALE (pgbench
# scale, default 1), DEMO_CLIENTS (default 4), DEMO_RATE (pgbench -R, default
# 200 tps), DEMO_DIR, DEMO_PG_PORT, DEMO_REDIS_PORT, DEMO_ADMIN_PORT.
set -euo pipefail
TURNOUT=${1:-build/proxy/turnout}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${DEMO_DIR:-/tmp/turnout-demo}
SCALE=${DEMO_SCALE:-1}
CLIENTS=${DEMO_CLIENTS:-4}
RATE=${DEMO_RATE:-200}   # pgbench transactions per second (-R), all clients
RUN_SECONDS=10   # one pgbench run; the load restarts it until the demo stops it
PY=/usr/bin/python3

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }
die() {
  printf '\n\033[1;31mdemo failed: %s\033[0m\n' "$*" >&2
  echo "(turnout's log: $DIR/turnout.log; last lines:)" >&2
  tail -15 "$DIR/turnout.log" >&2 2>/dev/null || true
  exit 1
}

if [ -f "$DIR/env" ]; then "$ROOT/tests/harness/backends.sh" stop "$DIR" || true; fi
rm -rf "$DIR"
mkdir -p "$DIR"
TURNOUT_PID=
LOAD_PIDS=()
stop_load() {
  touch "$DIR/load.stop"
  local p
  for p in "${LOAD_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  LOAD_PIDS=()
}
cleanup() {
  if [ ${#LOAD_PIDS[@]} -gt 0 ]; then
    touch "$DIR/load.stop"
    kill "${LOAD_PIDS[@]}" 2>/dev/null || true
    wait "${LOAD_PIDS[@]}" 2>/dev/null || true
  fi
  if [ -n "$TURNOUT_PID" ]; then kill -TERM "$TURNOUT_PID" 2>/dev/null && wait "$TURNOUT_PID" 2>/dev/null || true; fi
  "$ROOT/tests/harness/backends.sh" stop "$DIR"
}
trap cleanup EXIT

say "Starting the old and new databases (Postgres 15 and Redis 7 on loopback)"
"$ROOT/tests/harness/backends.sh" start "$DIR"
# shellcheck disable=SC1091
source "$DIR/env"

PG_PORT=${DEMO_PG_PORT:-16432}
REDIS_PORT=${DEMO_REDIS_PORT:-16379}
ADMIN_PORT=${DEMO_ADMIN_PORT:-19090}
OLD=$TURNOUT_TEST_PG_OLD_PORT NEW=$TURNOUT_TEST_PG_NEW_PORT
ROLD=$TURNOUT_TEST_REDIS_OLD_PORT RNEW=$TURNOUT_TEST_REDIS_NEW_PORT
export PGPASSWORD=$TURNOUT_TEST_PG_PASSWORD PGSSLMODE=disable PGOPTIONS='-c client_min_messages=warning'
conn() { echo "host=127.0.0.1 port=$1 user=$TURNOUT_TEST_PG_USER dbname=app"; }
q() { psql -X -q -tA -v ON_ERROR_STOP=1 "$(conn "$1")" -c "$2"; }

say "The application's data lives on old; new gets the schema only"
printf '$ pgbench -i -s %s old\n' "$SCALE"
pgbench -i -q -s "$SCALE" "$(conn "$OLD")" >"$DIR/pgbench-init.log" 2>&1 || { cat "$DIR/pgbench-init.log"; die "pgbench -i"; }
# The change stream addresses rows by primary key; pgbench_history has none.
sql() { printf '$ psql %s -c "%s"\n' "$1" "$3"; q "$2" "$3"; }
sql old "$OLD" "alter table pgbench_history add column hid bigserial primary key"
# A commit reaches the stream once flushed (the harness runs with it off).
sql old "$OLD" "alter database app set synchronous_commit = on"
pg_dump --schema-only "$(conn "$OLD")" >"$DIR/schema.sql"
printf '$ pg_dump --schema-only old | psql new\n'
psql -X -q -v ON_ERROR_STOP=1 "$(conn "$NEW")" -f "$DIR/schema.sql" >/dev/null
# 2,000 users as Redis hashes on old, for /migrate to move.
for i in $(seq 1 2000); do printf 'HSET user:%d name user-%d plan free\n' "$i" "$i"; done |
  redis-cli -p "$ROLD" >/dev/null
for side in old new; do
  port=$OLD rport=$ROLD
  [ $side = new ] && port=$NEW rport=$RNEW
  printf '  %-4s postgres: %7s accounts, %s history rows; redis: %s keys\n' "$side" \
    "$(q "$port" "select count(*) from pgbench_accounts")" "$(q "$port" "select count(*) from pgbench_history")" \
    "$(redis-cli -p "$rport" dbsize)"
done

sed -e "s/@PG_OLD_PORT@/$OLD/; s/@PG_NEW_PORT@/$NEW/" \
    -e "s/@REDIS_OLD_PORT@/$ROLD/; s/@REDIS_NEW_PORT@/$RNEW/" \
    -e "s/@PG_PORT@/$PG_PORT/; s/@REDIS_PORT@/$REDIS_PORT/; s/@ADMIN_PORT@/$ADMIN_PORT/" \
    -e "s|@STATE@|$DIR/turnout-state.json|" \
    "$ROOT/deploy/turnout.example.yaml" >"$DIR/turnout.yaml"
export PG_OLD_PASSWORD=$TURNOUT_TEST_PG_PASSWORD PG_NEW_PASSWORD=$TURNOUT_TEST_PG_PASSWORD
export TURNOUT_TOKEN=demo-admin-token-$RANDOM$RANDOM$RANDOM
printf '%s admin demo-operator\n' "$TURNOUT_TOKEN" >"$DIR/tokens"
CTL=("$TURNOUT" ctl --server "http://127.0.0.1:$ADMIN_PORT")
ID=canary_migration

say "Checking the configuration"
run "$TURNOUT" --check-config "$DIR/turnout.yaml"

say "Starting turnout"
"$TURNOUT" --config "$DIR/turnout.yaml" >"$DIR/turnout.log" 2>&1 &
TURNOUT_PID=$!
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$ADMIN_PORT/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
cat "$DIR/turnout.log"

PG_URL="postgres://$TURNOUT_TEST_PG_USER@127.0.0.1:$PG_PORT/app?sslmode=disable"
cat <<TXT

Point your application at turnout:
  Postgres  $PG_URL
  Redis     redis://127.0.0.1:$REDIS_PORT
  Admin     http://127.0.0.1:$ADMIN_PORT  (token in \$TURNOUT_TOKEN)
TXT

# --- the application load --------------------------------------------------
# pgbench TPC-B through turnout, RUN_SECONDS per run, restarted until
# load.stop exists; each run's summary in pgbench.N.log.
pgbench_load() {
  local n=0
  while [ ! -e "$DIR/load.stop" ]; do
    n=$((n + 1))
    pgbench -n -c "$CLIENTS" -j 2 -R "$RATE" -T "$RUN_SECONDS" -h 127.0.0.1 -p "$PG_PORT" -U "$TURNOUT_TEST_PG_USER" app \
      >"$DIR/pgbench.$n.log" 2>&1 || echo "pgbench run $n exited with status $?" >>"$DIR/load.errors"
  done
}
# A Redis writer through turnout: order:N = a fresh value, one SET at a
# time; every acknowledged (OK) write is listed in redis.acked.
redis_writer() {
  local i=0 value reply
  while [ ! -e "$DIR/load.stop" ]; do
    i=$((i + 1))
    value="placed-$i-$EPOCHREALTIME"
    reply=$(redis-cli -p "$REDIS_PORT" set "order:$i" "$value" 2>&1) || true
    if [ "$reply" = OK ]; then
      printf 'order:%d %s\n' "$i" "$value" >>"$DIR/redis.acked"
    else
      printf 'order:%d %s\n' "$i" "$reply" >>"$DIR/redis.failed"
    fi
    sleep 0.02
  done
}
rm -f "$DIR/load.stop"
: >"$DIR/redis.acked"
say "The application runs through turnout until the end: pgbench TPC-B (-c $CLIENTS, $RATE tps) and a Redis writer"
pgbench_load &
LOAD_PIDS+=($!)
redis_writer &
LOAD_PIDS+=($!)
sleep 3
load_line() {  # new is counted first: old, read a moment later, has at least as many
  local on_new
  on_new=$(q "$NEW" "select count(*) from pgbench_history")
  printf '  load so far: pgbench_history on old %s rows, on new %s; Redis writes acknowledged %s\n' \
    "$(q "$OLD" "select count(*) from pgbench_history")" "$on_new" "$(wc -l <"$DIR/redis.acked")"
}
load_line

# --- JSON from the migration record -----------------------------------------
# field EXPR: evaluates EXPR on the record (`d`, verbose GET) in Python.
field() {
  "${CTL[@]}" get "$ID" | "$PY" -c '
import json, sys
d = json.load(sys.stdin)
try:
    v = eval(sys.argv[1])
except (KeyError, IndexError, TypeError):
    v = ""
print("" if v is None else v)' "$1"
}

say "Create the migration: canary, sync dual-write by the change stream, data moved by a scan"
cat >"$DIR/migration.json" <<JSON
{"id": "$ID",
 "description": "move app-db and app-cache to the new servers",
 "strategy": {"type": "canary", "read_percentage": 0,
              "write_mode": {"mode": "dual_write", "policy": "old_authoritative", "apply": "sync"}},
 "data": {"type": "scan"}}
JSON
cat "$DIR/migration.json"
run "${CTL[@]}" create -f "$DIR/migration.json"
echo "(reads stay on old, 0 %, until new holds the data)"

say "Dry run: can both sides be reached, do the schemas match, how will data move?"
printf '$ %s\n' "turnout ctl test $ID"
"${CTL[@]}" test "$ID" >"$DIR/test.json"
"$PY" - "$DIR/test.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print("  dry run:", "ok" if d.get("ok") else "BLOCKED")
for r in d.get("routes", []):
    dp = r.get("data_path") or {}
    extra = f"  data by {dp.get('method')}, dual-writes by {dp.get('dual_write')}" if dp else ""
    print(f"  route {r.get('route')}: {'ok' if r.get('ok', True) else 'blocked'}{extra}")
    for b in r.get("blocking", []) or []: print("    blocking:", b)
    for w in r.get("warnings", []) or []: print("    warning:", w)
for b in d.get("blocking", []) or []: print("  blocking:", b)
PY

say "Migrate: /migrate moves the data while the application writes"
run "${CTL[@]}" migrate "$ID" >/dev/null
moved() {  # the Postgres stream streams and the Redis copy is done
  case "$(field '[r.get("stream", {}).get("phase", "") for r in d["progress"]["routes"] if r["route"] == "app-db"][0]')" in
    streaming | caught_up) ;;
    *) return 1 ;;
  esac &&
    [ "$(field '[r["phase"] for r in d["progress"]["routes"] if r["route"] == "app-cache"][0]')" = done ]
}
until=$((SECONDS + 180))
while :; do
  printf '$ turnout ctl status %s    (--watch redraws it every second)\n' "$ID"
  "${CTL[@]}" status "$ID"
  [ "$(field 'd["state"]')" = Failed ] && die "the migration failed"
  moved && break
  [ $SECONDS -ge $until ] && die "the data was not moved within 180 s"
  sleep 2
done
load_line

# Reads through turnout, each on a new connection: Postgres says which
# server answered (inet_server_port), Redis is counted by turnout's metrics.
redis_new_reads() {
  curl -s "http://127.0.0.1:$ADMIN_PORT/metrics" |
    awk '/^turnout_requests_total\{/ && /route="app-cache"/ && /backend="new"/ && /class="read"/ { s += $NF } END { print s + 0 }'
}
share() {
  local pg_new=0 before after i
  before=$(redis_new_reads)
  for i in $(seq 1 40); do
    [ "$(psql -X -tA "$(conn "$PG_PORT")" -c "select inet_server_port()")" = "$NEW" ] && pg_new=$((pg_new + 1))
    redis-cli -p "$REDIS_PORT" hget "user:$i" name >/dev/null
  done
  after=$(redis_new_reads)
  printf '  of 40 reads, answered by new: postgres %d, redis %d\n' "$pg_new" "$((after - before))"
}
stage() {  # stage PERCENT
  local ratio
  ratio=$(awk -v p="$1" 'BEGIN { printf "%g", p / 100 }')
  printf '{"strategy": {"type": "canary", "read_percentage": %s, "write_mode": {"mode": "dual_write", "policy": "old_authoritative", "apply": "sync"}}}\n' \
    "$ratio" >"$DIR/stage-$1.json"
  printf '$ turnout ctl patch %s -f stage-%s.json   # %s\n' "$ID" "$1" "$(cat "$DIR/stage-$1.json")"
  "${CTL[@]}" patch "$ID" -f "$DIR/stage-$1.json" | sed -n '1,3p'
  share
}
say "Stage 1: canary at 5 % of reads"
stage 5
say "Stage 2: 25 %"
stage 25
say "Stage 3: 75 %"
stage 75
load_line

say "Verify: both sides compared row by row and key by key, under load"
printf '$ turnout ctl verify %s\n' "$ID"
"${CTL[@]}" verify "$ID" >"$DIR/verify.json" || die "verify failed: $(cat "$DIR/verify.json")"
"$PY" - "$DIR/verify.json" <<'PY' || die "verify found differences (report: $DIR/verify.json)"
import json, sys
d = json.load(open(sys.argv[1]))
for r in d.get("routes", []):
    if "tables" in r:
        for t in r["tables"]:
            hot = f", {t['rows_unsettled']} hot rows still changing" if t.get("rows_unsettled") else ""
            print(f"  {r.get('route')}  {t['table']:<26} old {t.get('old_rows')} rows, new {t.get('new_rows')}: "
                  f"{'equal' if t.get('equal') else 'DIFFERENT'} ({t.get('consistency', '')}{hot})")
    else:
        print(f"  {r.get('route')}  {r.get('keys_compared', r.get('keys', '?'))} keys: "
              f"{'equal' if r.get('equal') else 'DIFFERENT'}")
print("  verify:", "equal" if d.get("equal") else "DIFFERENCES")
sys.exit(0 if d.get("equal") else 1)
PY

say "Cutover under load: PATCH to big_bang; writes are held while new catches up, then flow to new"
printf '{"strategy": {"type": "big_bang"}}\n' >"$DIR/cutover.json"
run "${CTL[@]}" patch "$ID" -f "$DIR/cutover.json" | sed -n '1,2p'
printf '  cutover phase right after the PATCH: %s  (catching_up: new closes in on old; then holding: new transactions wait at their start, open ones finish, new catches up)\n' \
  "$(field 'd.get("cutover", {}).get("phase", "")')"
until=$((SECONDS + 120))
while :; do
  phase=$(field 'd.get("cutover", {}).get("phase", "")')
  state=$(field 'd["state"]')
  [ "$phase" = abandoned ] && die "the cutover was abandoned: $(field 'd["cutover"]')"
  [ "$state" = Failed ] && die "the migration failed"
  [ "$phase" = done ] && [ "$state" = Completed ] && break
  [ $SECONDS -ge $until ] && die "no completed cutover within 120 s (cutover phase '$phase', state $state)"
  sleep 0.2
done
HOLD_MS=$(field 'd["cutover"]["hold_ms"]')
printf '  cutover: %s\n' "$(field 'json.dumps(d["cutover"])')"
printf '\033[1m  writes were held for %s ms\033[0m\n' "$HOLD_MS"
run "${CTL[@]}" status "$ID"
# The validator at the end of the data movement runs after the flip: new
# then takes writes that old no longer gets (big_bang completes the
# migration: no stream back to old).
END_DIFF=$(field 'sum(t.get("differences_total", 0) for r in d["progress"]["verification"]["routes"] for t in r.get("tables", []))')
if [ -n "$END_DIFF" ] && [ "$END_DIFF" != 0 ]; then
  echo "  (the end-of-copy validator ran after the flip: its $END_DIFF differing rows are writes made on new since,"
  echo "   which old no longer receives; the comparison that counts is the verify before the cutover)"
fi
run "${CTL[@]}" list
echo "(the application keeps writing, now to new)"
sleep 5
load_line

say "Stopping the load; counting what the application was told succeeded"
stop_load
[ -s "$DIR/load.errors" ] && die "the load reported errors: $(cat "$DIR/load.errors")"
TX=0 FAILED=0 RUNS=0
for f in "$DIR"/pgbench.*.log; do
  n=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$f" | head -1)
  [ -n "$n" ] || die "pgbench run $f has no summary: $(tail -5 "$f")"
  fl=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$f" | head -1)
  TX=$((TX + n)) FAILED=$((FAILED + ${fl:-0})) RUNS=$((RUNS + 1))
done
HIST_NEW=$(q "$NEW" "select count(*) from pgbench_history")
HIST_OLD=$(q "$OLD" "select count(*) from pgbench_history")
printf '  pgbench: %d runs, %d transactions acknowledged, %d failed\n' "$RUNS" "$TX" "$FAILED"
printf '  pgbench_history: %d rows on new (old stopped at %d when writes moved to new)\n' "$HIST_NEW" "$HIST_OLD"
ACKED=$(wc -l <"$DIR/redis.acked")
REDIS_FAILED=0
[ -f "$DIR/redis.failed" ] && REDIS_FAILED=$(wc -l <"$DIR/redis.failed")
# Every acknowledged key on new with the value written, read in one pipeline.
MISSING_KEYS=$(awk '{ print "GET " $1 }' "$DIR/redis.acked" | redis-cli -p "$RNEW" |
  paste -d ' ' "$DIR/redis.acked" - | awk '$2 != $3 { print $1 " (wanted " $2 ", new has \"" $3 "\")" }')
ON_OLD=$(awk '{ print "EXISTS " $1 }' "$DIR/redis.acked" | redis-cli -p "$ROLD" | awk '{ s += $1 } END { print s + 0 }')
USERS_NEW=$(redis-cli -p "$RNEW" --scan --pattern 'user:*' | wc -l)
printf '  redis writer: %d SETs acknowledged (%d failed); on new: %d with their values, on old: %d (until the cutover)\n' \
  "$ACKED" "$REDIS_FAILED" "$((ACKED - $(printf '%s' "$MISSING_KEYS" | grep -c . || true)))" "$ON_OLD"
printf '  redis users moved by /migrate: %d of 2000 on new\n' "$USERS_NEW"

missing=()
[ "$FAILED" -eq 0 ] || missing+=("$FAILED pgbench transactions failed")
[ "$HIST_NEW" -eq "$TX" ] || missing+=("pgbench_history on new has $HIST_NEW rows for $TX acknowledged transactions")
[ -z "$MISSING_KEYS" ] || missing+=("Redis keys missing or different on new: $(printf '%s' "$MISSING_KEYS" | head -5 | paste -sd ';' -)")
[ "$USERS_NEW" -eq 2000 ] || missing+=("$USERS_NEW of 2000 user hashes on new")
[ "$REDIS_FAILED" -eq 0 ] || missing+=("$REDIS_FAILED Redis writes failed: $(head -3 "$DIR/redis.failed" | paste -sd ';' -)")
if [ ${#missing[@]} -gt 0 ]; then
  printf '  %s\n' "${missing[@]}" >&2
  die "acknowledged writes missing on new"
fi
printf '\033[1m  every acknowledged write is on new: none missing (%d transactions, %d keys; writes held %s ms at the cutover)\033[0m\n' \
  "$TX" "$ACKED" "$HOLD_MS"

say "What turnout counted (Prometheus, /metrics)"
curl -s "http://127.0.0.1:$ADMIN_PORT/metrics" |
  grep -E '^turnout_(requests_total\{.*class="(read|write)"|migration_state\{.*\} 1|stream_waits_total\{.*route="app-db"|stream_commit_targets_total\{.*route="app-db"|cutover_write_hold_seconds\{|data_movement_rows_total)' |
  head -30

say "Graceful shutdown: SIGTERM drains sessions and exits 0"
kill -TERM "$TURNOUT_PID"
wait "$TURNOUT_PID" && echo "turnout exited with status $?"
TURNOUT_PID=
tail -2 "$DIR/turnout.log"

if [ "${DEMO_KEEP:-0}" = 1 ]; then
  "$TURNOUT" --config "$DIR/turnout.yaml" >>"$DIR/turnout.log" 2>&1 &
  TURNOUT_PID=$!
  say "Everything is running; Ctrl-C stops it"
  wait "$TURNOUT_PID" || true
fi
