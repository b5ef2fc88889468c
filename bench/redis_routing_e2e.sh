#!/usr/bin/env bash
# End-to-end cost of the routing engine on a Redis route: redis-benchmark
# through turnout with no migration (passthrough) against the same route
# under a canary migration whose strategy is switched live through the admin
# API: dual-write sync, dual-write async (both old_authoritative, every read
# on old) and shadow_traffic (reads mirrored to new and compared). Tests are
# interleaved mode by mode so drift on a shared machine hits all alike.
# Prints ops/s and p50 (ms) per mode and the ratio to passthrough.
#
#   bench/redis_routing_e2e.sh BUILD_DIR        (under tests/harness/backends.sh run)
#
# The servers are flushed before every run: use servers of its own (the
# harness' `run` starts fresh ones), never shared test servers.
#
# Knobs: REQUESTS (default 50000 at -P 1; x4 at -P 16), CLIENTS (50), ROUNDS
# (1; the median round is reported when more), TURNOUT_WORKERS (1), KEYSPACE
# (-r, 100000).
set -euo pipefail
BUILD=$(cd "${1:?usage: redis_routing_e2e.sh BUILD_DIR}" && pwd)
TURNOUT=$BUILD/proxy/turnout
REQUESTS=${REQUESTS:-50000}
CLIENTS=${CLIENTS:-50}
ROUNDS=${ROUNDS:-1}
TURNOUT_WORKERS=${TURNOUT_WORKERS:-1}
KEYSPACE=${KEYSPACE:-100000}
TESTS=(set get incr lpush lrange_100)
MODES=(passthrough dw_sync dw_async shadow)
: "${TURNOUT_TEST_REDIS_OLD_PORT:?run under tests/harness/backends.sh run}"
[ -x "$TURNOUT" ] || { echo "no turnout binary at $TURNOUT" >&2; exit 1; }
# shellcheck source-path=SCRIPTDIR source=lib/redis_bench.sh
source "$(dirname "$0")/lib/redis_bench.sh"

bench_workdir turnout-redis-routing-bench

PLAIN=$(free_port)
ROUTED=$(free_port)
ADMIN=$(free_port)
TOKEN=bench-admin-token-0123456789abcdef
echo "$TOKEN admin bench" >"$WORK/tokens"

# One turnout, two routes to the same servers: "plain" stays outside any
# migration, "routed" gets the migration (attached by interlay).
cat >"$WORK/turnout.yaml" <<YAML
workers: $TURNOUT_WORKERS
log_level: warn
admin:
  listen: 127.0.0.1:$ADMIN
  tokens_file: tokens
state_store:
  path: state.json
journal:
  path: journal.log
backends:
  - name: redis-old
    protocol: redis
    address: 127.0.0.1:$TURNOUT_TEST_REDIS_OLD_PORT
    user: $TURNOUT_TEST_REDIS_USER
    password: $TURNOUT_TEST_REDIS_PASSWORD
  - name: redis-new
    protocol: redis
    address: 127.0.0.1:$TURNOUT_TEST_REDIS_NEW_PORT
    user: $TURNOUT_TEST_REDIS_USER
    password: $TURNOUT_TEST_REDIS_PASSWORD
routes:
  - name: plain
    protocol: redis
    mode: protocol
    listen: 127.0.0.1:$PLAIN
    old: redis-old
  - name: routed
    protocol: redis
    mode: protocol
    listen: 127.0.0.1:$ROUTED
    old: redis-old
YAML
(cd "$WORK" && exec "$TURNOUT" --config "$WORK/turnout.yaml" >"$WORK/turnout.log" 2>&1) &
PIDS+=($!)
wait_port "$PLAIN"
wait_port "$ROUTED"

api() {  # api METHOD PATH [BODY]
  local out
  out=$(curl -s -S -X "$1" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    ${3:+--data-binary "$3"} -w '\n%{http_code}' "http://127.0.0.1:$ADMIN$2")
  case ${out##*$'\n'} in 2??) ;; *) echo "admin API $1 $2 failed: $out" >&2; exit 1 ;; esac
}

strategy() {
  case $1 in
    dw_sync) echo '{"type":"canary","read_percentage":0,"write_mode":{"mode":"dual_write","policy":"old_authoritative","apply":"sync"}}' ;;
    dw_async) echo '{"type":"canary","read_percentage":0,"write_mode":{"mode":"dual_write","policy":"old_authoritative","apply":"async"}}' ;;
    shadow) echo '{"type":"shadow_traffic"}' ;;
  esac
}
api POST /api/v1/migrations "{\"id\":\"bench\",\"strategy\":$(strategy dw_sync)}"
api POST /api/v1/migrations/bench/interlay/routed '{"endpoint":"redis-new"}'

# Both servers start every run empty, so dual-writes and shadow reads meet
# equal data (the harness' servers are this script's own: flushing is fine).
flush() {
  for p in "$TURNOUT_TEST_REDIS_OLD_PORT" "$TURNOUT_TEST_REDIS_NEW_PORT"; do
    redis-cli -p "$p" --user "$TURNOUT_TEST_REDIS_USER" --pass "$TURNOUT_TEST_REDIS_PASSWORD" --no-auth-warning \
      flushall >/dev/null
  done
}

# run PORT TEST PIPELINE -> "rps p50 p99", on emptied servers
run() {
  flush
  redis_bench "$1" "$2" "$3" -r "$KEYSPACE"
}

echo "machine: $(nproc) cores, $(uname -r); redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/')"
echo "redis-benchmark -c $CLIENTS -n $REQUESTS (x4 at -P 16) -r $KEYSPACE, rounds: $ROUNDS, turnout workers: $TURNOUT_WORKERS"
echo
printf '| %-10s | %2s | %12s | %12s | %5s | %12s | %5s | %12s | %5s |\n' \
  test P "passthrough" "dw sync" ratio "dw async" ratio "shadow" ratio
printf '|%s|\n' "------------|----|--------------|--------------|-------|--------------|-------|--------------|-------"
for pipeline in 1 16; do
  for test in "${TESTS[@]}"; do
    declare -A rps=()
    for mode in "${MODES[@]}"; do rps[$mode]=""; done
    for round in $(seq 1 "$ROUNDS"); do
      for mode in "${MODES[@]}"; do
        port=$ROUTED
        if [ "$mode" = passthrough ]; then
          port=$PLAIN
        else
          api PATCH /api/v1/migrations/bench "{\"strategy\":$(strategy "$mode")}"
        fi
        read -r r _ < <(run "$port" "$test" "$pipeline")
        rps[$mode]+="$r "
        # Async writes still queued when the clients leave are applied within
        # 2 s (DESIGN: never dropped); let them land before the next flush.
        [ "$mode" = dw_async ] && sleep 2.5
      done
    done
    base=$(median_of "${rps[passthrough]}")
    line=$(printf '| %-10s | %2s | %12.0f |' "$test" "$pipeline" "$base")
    for mode in dw_sync dw_async shadow; do
      v=$(median_of "${rps[$mode]}")
      line+=$(printf ' %12.0f | %5.2f |' "$v" "$(awk -v a="$v" -v b="$base" 'BEGIN { print (b > 0 ? a / b : 0) }')")
    done
    echo "$line"
    unset rps
  done
done
echo
curl -s "http://127.0.0.1:$ADMIN/metrics" |
  grep -E '^turnout_(dualwrite_total|shadow_comparisons_total|shadow_dropped_total)\{.*route="routed"' || true
if grep -qiE '"level":"(warn|error)"|\b(WARN|ERROR)\b' "$WORK/turnout.log"; then
  echo "turnout logged warnings or errors:" >&2
  grep -iE 'warn|error' "$WORK/turnout.log" | head >&2
fi
