# shellcheck shell=bash
# Shared by bench/redis_*_e2e.sh (sourced, not run): a scratch folder with
# the background processes it owns, free ports, and one redis-benchmark run
# reduced to a line of figures.
#
# Reads REQUESTS and CLIENTS from the sourcing script.

# bench_workdir PREFIX: sets WORK (removed on exit unless KEEP_WORK is set)
# and PIDS (killed on exit).
bench_workdir() {
  WORK=$(mktemp -d "/tmp/$1.XXXXXX")
  PIDS=()
  trap bench_cleanup EXIT
}
bench_cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
}

# start_twemproxy PORT STATS_PORT SERVER_PORT: twemproxy (Debian's
# nutcracker) listening on PORT with one pool holding the one redis-server at
# SERVER_PORT; its pid is added to PIDS and left in TWEM_PID.
start_twemproxy() {
  cat >"$WORK/nutcracker.yml" <<YML
bench:
  listen: 127.0.0.1:$1
  hash: fnv1a_64
  distribution: ketama
  redis: true
  preconnect: true
  auto_eject_hosts: false
  timeout: 5000
  servers:
    - 127.0.0.1:$3:1
YML
  nutcracker -c "$WORK/nutcracker.yml" -s "$2" -a 127.0.0.1 -o "$WORK/nutcracker.log" -p "$WORK/nutcracker.pid" &
  TWEM_PID=$!
  PIDS+=("$TWEM_PID")
}

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

# redis_bench PORT TEST PIPELINE [redis-benchmark args...] -> "rps p50 p99"
# REQUESTS requests at -P 1, four times as many when pipelined. The last CSV
# row is the test's own: -t lrange_100 first prints the LPUSH that fills the
# list. CSV columns (redis-benchmark 7.0): test, rps, avg, min, p50, p95,
# p99, max latency (ms), each quoted, so splitting on '"' puts them at
# $2, $4, $6, ...
redis_bench() {
  local port=$1 test=$2 pipeline=$3 n=$REQUESTS
  shift 3
  [ "$pipeline" -gt 1 ] && n=$((REQUESTS * 4))
  redis-benchmark -p "$port" -t "$test" -n "$n" -c "$CLIENTS" -P "$pipeline" "$@" --csv 2>/dev/null |
    awk -F'"' 'NR > 1 && $2 != "" { last = $4 " " $10 " " $14 } END { print last }'
}

# median_of "v1 v2 ..." -> the median (the upper one of an even count's two).
median_of() {
  tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
