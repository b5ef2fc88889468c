#!/usr/bin/env bash
# Installs exactly the Debian 12 packages turnout needs to build, test, demo and
# benchmark. Idempotent: when everything is present it only asks dpkg (fast).
set -euo pipefail

packages=(
  # build
  build-essential cmake ninja-build pkg-config ccache
  libboost1.81-dev libssl-dev libpq-dev libhiredis-dev libabsl-dev
  prometheus-cpp-dev libyaml-cpp-dev libspdlog-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  # servers the harness starts, and the real clients the tests use
  postgresql-15 postgresql-client-15 redis-server redis-tools
  python3 python3-psycopg2 python3-psycopg python3-redis
  nodejs openjdk-17-jdk-headless libpostgresql-jdbc-java
  # benchmarks: the proxies we compare against; promtool for /metrics
  pgbouncer nutcracker prometheus
  # test CA and process tools
  openssl procps curl
)

missing=()
for p in "${packages[@]}"; do
  # 'install ok installed' is the only state that means usable.
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}" >&2
  echo "install-deps: run as root (or install them) and try again" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts packaged services on install where it can; the harness runs
# its own servers on free ports, so stop the packaged ones if they came up.
for svc in redis-server postgresql pgbouncer nutcracker prometheus; do
  if command -v service >/dev/null 2>&1; then service "$svc" stop >/dev/null 2>&1 || true; fi
done
echo "install-deps: done"
