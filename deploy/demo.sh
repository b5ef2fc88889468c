#!/usr/bin/env bash
# make demo: two Postgres and two Redis servers on loopback (old and new),
# turnout in front of them with the example configuration and the embedded
# file state store, and a canary migration walked through its stages with
# `turnout ctl`, showing at each stage which side answers the application.
# DEMO_KEEP=1 leaves everything running until Ctrl-C.
set -euo pipefail
TURNOUT=${1:-build/proxy/turnout}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${DEMO_DIR:-/tmp/turnout-demo}

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

if [ -f "$DIR/env" ]; then "$ROOT/tests/harness/backends.sh" stop "$DIR" || true; fi
rm -rf "$DIR"
TURNOUT_PID=
cleanup() {
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
sed -e "s/@PG_OLD_PORT@/$TURNOUT_TEST_PG_OLD_PORT/; s/@PG_NEW_PORT@/$TURNOUT_TEST_PG_NEW_PORT/" \
    -e "s/@REDIS_OLD_PORT@/$TURNOUT_TEST_REDIS_OLD_PORT/; s/@REDIS_NEW_PORT@/$TURNOUT_TEST_REDIS_NEW_PORT/" \
    -e "s/@PG_PORT@/$PG_PORT/; s/@REDIS_PORT@/$REDIS_PORT/; s/@ADMIN_PORT@/$ADMIN_PORT/" \
    -e "s|@STATE@|$DIR/turnout-state.json|" \
    "$ROOT/deploy/turnout.example.yaml" >"$DIR/turnout.yaml"
export PG_OLD_PASSWORD=$TURNOUT_TEST_PG_PASSWORD PG_NEW_PASSWORD=$TURNOUT_TEST_PG_PASSWORD
export TURNOUT_TOKEN=demo-admin-token-$RANDOM$RANDOM$RANDOM
printf '%s admin demo-operator\n' "$TURNOUT_TOKEN" >"$DIR/tokens"
CTL=("$TURNOUT" ctl --server "http://127.0.0.1:$ADMIN_PORT")

say "Checking the configuration"
run "$TURNOUT" --check-config "$DIR/turnout.yaml"

say "Starting turnout"
"$TURNOUT" --config "$DIR/turnout.yaml" >"$DIR/turnout.log" 2>&1 &
TURNOUT_PID=$!
for _ in $(seq 1 100); do
  (echo >"/dev/tcp/127.0.0.1/$ADMIN_PORT") 2>/dev/null && break
  sleep 0.1
done
cat "$DIR/turnout.log"

PG_URL="postgres://$TURNOUT_TEST_PG_USER:$TURNOUT_TEST_PG_PASSWORD@127.0.0.1:$PG_PORT/app?sslmode=disable"
OLD_URL="postgres://$TURNOUT_TEST_PG_USER:$TURNOUT_TEST_PG_PASSWORD@127.0.0.1:$TURNOUT_TEST_PG_OLD_PORT/app?sslmode=disable"
NEW_URL="postgres://$TURNOUT_TEST_PG_USER:$TURNOUT_TEST_PG_PASSWORD@127.0.0.1:$TURNOUT_TEST_PG_NEW_PORT/app?sslmode=disable"
cat <<TXT

Point your application at turnout:
  Postgres  $PG_URL
  Redis     redis://127.0.0.1:$REDIS_PORT
  Admin     http://127.0.0.1:$ADMIN_PORT  (token in \$TURNOUT_TOKEN)
TXT

say "The application writes through turnout; the old databases serve it"
run psql -X -q "$PG_URL" -c "create table orders(id int primary key, item text, served_by text default 'old')" \
  -c "insert into orders(id, item) select g, 'item ' || g from generate_series(1, 20) g"
for i in $(seq 1 20); do redis-cli -p "$REDIS_PORT" set "user:$i" "user-$i@old" >/dev/null; done
run redis-cli -p "$REDIS_PORT" get user:1

say "The new databases get a copy (here by hand; each row says which side holds it)"
run psql -X -q "$NEW_URL" -c "create table orders(id int primary key, item text, served_by text default 'new')" \
  -c "insert into orders(id, item) select g, 'item ' || g from generate_series(1, 20) g"
for i in $(seq 1 20); do redis-cli -p "$TURNOUT_TEST_REDIS_NEW_PORT" set "user:$i" "user-$i@new" >/dev/null; done

# Reads through turnout, each on a new connection; counts the answers from new.
share() {
  local pg_new=0 redis_new=0 i
  for i in $(seq 1 40); do
    [ "$(psql -X -tA "$PG_URL" -c "select served_by from orders where id = $(( (i % 20) + 1 ))")" = new ] && pg_new=$((pg_new + 1))
    case "$(redis-cli -p "$REDIS_PORT" get "user:$(( (i % 20) + 1 ))")" in *@new) redis_new=$((redis_new + 1)) ;; esac
  done
  printf '  of 40 reads, answered by new: postgres %d, redis %d\n' "$pg_new" "$redis_new"
}

say "Dry run: can both sides be reached, do the schemas match?"
run "${CTL[@]}" create -f <(printf '%s' '{"id":"canary_migration","description":"move app-db and app-cache to the new servers","strategy":{"type":"canary","read_percentage":0.05,"write_mode":{"mode":"dual_write","policy":"old_authoritative"}}}')
run "${CTL[@]}" test canary_migration

say "Stage 1: canary at 5 % of reads"
share
say "Stage 2: PATCH to 25 %"
run "${CTL[@]}" patch canary_migration -f <(printf '%s' '{"strategy":{"type":"canary","read_percentage":0.25,"write_mode":{"mode":"dual_write","policy":"old_authoritative"}}}')
share
say "Stage 3: migrate (Running) and PATCH to 75 %"
run "${CTL[@]}" migrate canary_migration
run "${CTL[@]}" patch canary_migration -f <(printf '%s' '{"strategy":{"type":"canary","read_percentage":0.75,"write_mode":{"mode":"dual_write","policy":"old_authoritative"}}}')
share
say "Stage 4: 100 % with cutover: the migration completes"
run "${CTL[@]}" patch canary_migration -f <(printf '%s' '{"strategy":{"type":"canary","read_percentage":1.0,"write_mode":{"mode":"cutover","write_percentage":1.0}}}')
share
run "${CTL[@]}" list

say "What turnout counted (Prometheus, /metrics)"
curl -s "http://127.0.0.1:$ADMIN_PORT/metrics" | grep -E '^turnout_(requests_total|migration_state\{.*\} 1|policy_version)' | head -20

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
