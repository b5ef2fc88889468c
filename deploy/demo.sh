#!/usr/bin/env bash
# make demo: two Postgres and two Redis servers on loopback (old and new),
# turnout in front of them with the example configuration and the embedded
# file state store, and a walk-through of what it does. DEMO_KEEP=1 leaves
# everything running until Ctrl-C.
set -euo pipefail
TURNOUT=${1:-build/proxy/turnout}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${DEMO_DIR:-/tmp/turnout-demo}

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

if [ -f "$DIR/env" ]; then "$ROOT/tests/harness/backends.sh" stop "$DIR" || true; fi
rm -rf "$DIR"
cleanup() {
  [ -n "${TURNOUT_PID:-}" ] && kill -TERM "$TURNOUT_PID" 2>/dev/null && wait "$TURNOUT_PID" 2>/dev/null || true
  "$ROOT/tests/harness/backends.sh" stop "$DIR"
}
trap cleanup EXIT

say "Starting the old and new databases"
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

say "Checking the configuration"
run "$TURNOUT" --check-config "$DIR/turnout.yaml"

say "Starting turnout"
"$TURNOUT" --config "$DIR/turnout.yaml" >"$DIR/turnout.log" 2>&1 &
TURNOUT_PID=$!
for _ in $(seq 1 100); do
  (echo >"/dev/tcp/127.0.0.1/$PG_PORT") 2>/dev/null && (echo >"/dev/tcp/127.0.0.1/$REDIS_PORT") 2>/dev/null && break
  sleep 0.1
done
cat "$DIR/turnout.log"

PG_URL="postgres://$TURNOUT_TEST_PG_USER:$TURNOUT_TEST_PG_PASSWORD@127.0.0.1:$PG_PORT/app?sslmode=disable"
cat <<TXT

Point your application at turnout:
  Postgres  $PG_URL
  Redis     redis://127.0.0.1:$REDIS_PORT
TXT

say "The application writes through turnout (served by the old databases)"
run psql -X "$PG_URL" -c "create table orders(id int primary key, item text)" \
  -c "insert into orders values (1, 'railway switch'), (2, 'signal lamp')" -c "select * from orders"
run redis-cli -p "$REDIS_PORT" set user:1 alice
run redis-cli -p "$REDIS_PORT" get user:1

say "The data sits on the old servers only, for now"
OLD_URL="postgres://$TURNOUT_TEST_PG_USER:$TURNOUT_TEST_PG_PASSWORD@127.0.0.1:$TURNOUT_TEST_PG_OLD_PORT/app?sslmode=disable"
NEW_URL="postgres://$TURNOUT_TEST_PG_USER:$TURNOUT_TEST_PG_PASSWORD@127.0.0.1:$TURNOUT_TEST_PG_NEW_PORT/app?sslmode=disable"
run psql -X -tA "$OLD_URL" -c "select count(*) as old_orders from orders"
run psql -X -tA "$NEW_URL" -c "select to_regclass('orders') is not null as new_has_orders"
run redis-cli -p "$TURNOUT_TEST_REDIS_OLD_PORT" exists user:1
run redis-cli -p "$TURNOUT_TEST_REDIS_NEW_PORT" exists user:1

say "Graceful shutdown: SIGTERM drains sessions and exits 0"
kill -TERM "$TURNOUT_PID"
wait "$TURNOUT_PID" && echo "turnout exited with status $?"
TURNOUT_PID=
tail -3 "$DIR/turnout.log"

if [ "${DEMO_KEEP:-0}" = 1 ]; then
  "$TURNOUT" --config "$DIR/turnout.yaml" >>"$DIR/turnout.log" 2>&1 &
  TURNOUT_PID=$!
  say "Everything is running; Ctrl-C stops it"
  wait "$TURNOUT_PID" || true
fi
