#!/usr/bin/env bash
# End-to-end Redis throughput and latency: redis-benchmark against the
# harness' old redis-server directly, through twemproxy (Debian's
# nutcracker, one pool with that one server) and through turnout (one
# protocol-mode route to it), interleaved test by test so drift on a shared
# machine hits all three alike. Prints ops/s and p50/p99 (ms) with ratios.
#
#   bench/redis_e2e.sh BUILD_DIR        (under tests/harness/backends.sh run)
#
# Knobs: REQUESTS (default 50000 at -P 1; x4 at -P 16), CLIENTS (50),
# ROUNDS (1; the median round is reported when more), TURNOUT_WORKERS (1:
# twemproxy is single-threaded too).
set -euo pipefail
BUILD=${1:?usage: redis_e2e.sh BUILD_DIR}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TURNOUT=$BUILD/proxy/turnout
REQUESTS=${REQUESTS:-50000}
CLIENTS=${CLIENTS:-50}
ROUNDS=${ROUNDS:-1}
TURNOUT_WORKERS=${TURNOUT_WORKERS:-1}
TESTS=(get set incr lpush lrange_100)
: "${TURNOUT_TEST_REDIS_OLD_PORT:?run under tests/harness/backends.sh run}"
command -v nutcracker >/dev/null || { echo "nutcracker (twemproxy) is not installed" >&2; exit 1; }
[ -x "$TURNOUT" ] || { echo "no turnout binary at $TURNOUT" >&2; exit 1; }
# shellcheck source-path=SCRIPTDIR source=lib/redis_bench.sh
source "$ROOT/bench/lib/redis_bench.sh"

bench_workdir turnout-redis-bench

DIRECT=$TURNOUT_TEST_REDIS_OLD_PORT
TWEM=$(free_port)
TURN=$(free_port)
STATS=$(free_port)

start_twemproxy "$TWEM" "$STATS" "$DIRECT"

cat >"$WORK/turnout.yaml" <<YAML
workers: $TURNOUT_WORKERS
log_level: warn
admin:
  enabled: false
backends:
  - name: redis-old
    protocol: redis
    address: 127.0.0.1:$DIRECT
routes:
  - name: redis
    protocol: redis
    mode: protocol
    listen: 127.0.0.1:$TURN
    old: redis-old
YAML
"$TURNOUT" --config "$WORK/turnout.yaml" >"$WORK/turnout.log" 2>&1 &
PIDS+=($!)
wait_port "$TWEM"
wait_port "$TURN"

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r); redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'), $(nutcracker -V 2>&1 | head -1)"
echo "redis-benchmark -c $CLIENTS -n $REQUESTS (x4 at -P 16), rounds: $ROUNDS, turnout workers: $TURNOUT_WORKERS"
echo
printf '| %-10s | %2s | %10s | %5s | %5s | %10s | %5s | %5s | %10s | %5s | %5s | %13s | %13s |\n' \
  test P "direct ops/s" p50 p99 "twem ops/s" p50 p99 "turnout ops/s" p50 p99 "turnout/direct" "turnout/twem"
printf '|%s|\n' "------------|----|--------------|-------|-------|------------|-------|-------|---------------|-------|-------|----------------|--------------"
for pipeline in 1 16; do
  for test in "${TESTS[@]}"; do
    declare -A rps=() p50=() p99=()
    for target in direct twem turnout; do rps[$target]=""; p50[$target]=""; p99[$target]=""; done
    for round in $(seq 1 "$ROUNDS"); do
      # Interleaved: each round runs the three targets back to back.
      for target in direct twem turnout; do
        case $target in direct) port=$DIRECT ;; twem) port=$TWEM ;; turnout) port=$TURN ;; esac
        read -r r a b < <(redis_bench "$port" "$test" "$pipeline")
        rps[$target]+="$r "; p50[$target]+="$a "; p99[$target]+="$b "
      done
    done
    dr=$(median_of "${rps[direct]}"); tr_=$(median_of "${rps[twem]}"); to=$(median_of "${rps[turnout]}")
    printf '| %-10s | %2s | %12.0f | %5s | %5s | %10.0f | %5s | %5s | %13.0f | %5s | %5s | %14.2f | %12.2f |\n' \
      "$test" "$pipeline" "$dr" "$(median_of "${p50[direct]}")" "$(median_of "${p99[direct]}")" \
      "$tr_" "$(median_of "${p50[twem]}")" "$(median_of "${p99[twem]}")" \
      "$to" "$(median_of "${p50[turnout]}")" "$(median_of "${p99[turnout]}")" \
      "$(awk -v a="$to" -v b="$dr" 'BEGIN { print (b > 0 ? a / b : 0) }')" \
      "$(awk -v a="$to" -v b="$tr_" 'BEGIN { print (b > 0 ? a / b : 0) }')"
    unset rps p50 p99
  done
done
if grep -qi "error" "$WORK/turnout.log"; then
  echo "turnout logged errors:" >&2
  grep -i error "$WORK/turnout.log" | head >&2
fi
