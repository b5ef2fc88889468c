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

WORK=$(mktemp -d /tmp/turnout-redis-bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() {
  for _ in $(seq 1 100); do
    redis-cli -p "$1" ping >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "nothing answers on port $1" >&2
  return 1
}

DIRECT=$TURNOUT_TEST_REDIS_OLD_PORT
TWEM=$(free_port)
TURN=$(free_port)
STATS=$(free_port)

cat >"$WORK/nutcracker.yml" <<YML
bench:
  listen: 127.0.0.1:$TWEM
  hash: fnv1a_64
  distribution: ketama
  redis: true
  preconnect: true
  auto_eject_hosts: false
  timeout: 5000
  servers:
    - 127.0.0.1:$DIRECT:1
YML
nutcracker -c "$WORK/nutcracker.yml" -s "$STATS" -a 127.0.0.1 -o "$WORK/nutcracker.log" -p "$WORK/nutcracker.pid" &
PIDS+=($!)

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

# run PORT TEST PIPELINE -> "rps p50 p99"
run() {
  local port=$1 test=$2 pipeline=$3 n=$REQUESTS
  [ "$pipeline" -gt 1 ] && n=$((REQUESTS * 4))
  redis-benchmark -p "$port" -t "$test" -n "$n" -c "$CLIENTS" -P "$pipeline" --csv 2>/dev/null |
    awk -F'"' 'NR > 1 && $2 != "" { print $4, $10, $14; exit }'
}

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

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
        read -r r a b < <(run "$port" "$test" "$pipeline")
        rps[$target]+="$r "; p50[$target]+="$a "; p99[$target]+="$b "
      done
    done
    m() { tr ' ' '\n' <<<"$1" | grep -v '^$' | median; }
    dr=$(m "${rps[direct]}"); tr_=$(m "${rps[twem]}"); to=$(m "${rps[turnout]}")
    printf '| %-10s | %2s | %12.0f | %5s | %5s | %10.0f | %5s | %5s | %13.0f | %5s | %5s | %14.2f | %12.2f |\n' \
      "$test" "$pipeline" "$dr" "$(m "${p50[direct]}")" "$(m "${p99[direct]}")" \
      "$tr_" "$(m "${p50[twem]}")" "$(m "${p99[twem]}")" \
      "$to" "$(m "${p50[turnout]}")" "$(m "${p99[turnout]}")" \
      "$(awk -v a="$to" -v b="$dr" 'BEGIN { print (b > 0 ? a / b : 0) }')" \
      "$(awk -v a="$to" -v b="$tr_" 'BEGIN { print (b > 0 ? a / b : 0) }')"
    unset rps p50 p99
  done
done
if grep -qi "error" "$WORK/turnout.log"; then
  echo "turnout logged errors:" >&2
  grep -i error "$WORK/turnout.log" | head >&2
fi
