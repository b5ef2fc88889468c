#!/usr/bin/env bash
# make bench: the Google Benchmarks (codecs, routing) and the end-to-end
# comparisons (bench/*_e2e.sh) against direct connections, PgBouncer and
# twemproxy, in one run on this machine, among them the cost of routing
# (bench/redis_routing_e2e.sh, bench/pg_routing_e2e.sh: passthrough against
# dual-write and shadow). Results go to bench/results/.
set -euo pipefail
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$ROOT/bench/results
mkdir -p "$OUT"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r)" | tee "$OUT/machine.txt"

for b in $(find "$BUILD/bench" -type f -name '*_bench' -perm -u+x | sort); do
  name=$(basename "$b")
  echo "== $name"
  "$b" --benchmark_min_time=0.5 | tee "$OUT/$name.txt"
done

for s in "$ROOT"/bench/*_e2e.sh; do
  [ -e "$s" ] || continue
  echo "== $(basename "$s")"
  "$ROOT/tests/harness/backends.sh" run -- "$s" "$BUILD" | tee "$OUT/$(basename "$s" .sh).txt"
done
echo "== pg_stream.sh" && "$ROOT/bench/pg_stream.sh" "$BUILD" | tee "$OUT/pg_stream.txt"
echo "== pg_dual_write.sh" && "$ROOT/bench/pg_dual_write.sh" "$BUILD" | tee "$OUT/pg_dual_write.txt"
echo "== pg_verify.sh" && "$ROOT/bench/pg_verify.sh" "$BUILD" | tee "$OUT/pg_verify.txt"
