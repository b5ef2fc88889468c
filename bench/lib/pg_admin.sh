# shellcheck shell=bash
# Shared by the Postgres benches that drive turnout's admin API (sourced, not
# run): bench/pg_dual_write.sh, bench/pg_verify.sh, bench/pg_stream.sh. The sourcing script sets
# BENCH_NAME, BUILD, WORK, DB, TOKEN, USER, PGPASSWORD, OLD and NEW (the
# harness' clusters) before it calls these, and ADMIN and PG (free_ports)
# before start_turnout; TURNOUT_PID is this file's. A script may define its
# own die after sourcing this file.

conn() { echo "host=127.0.0.1 port=$1 user=$USER dbname=$2"; }
q() { psql -X -q -tA -v ON_ERROR_STOP=1 "$(conn "$1" "$2")" -c "$3"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a/b; else print "-" }'; }
# median V...: the middle value (an even count: the mean of the middle two).
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

# free_ports N: N free loopback ports on one line.
free_ports() {
  /usr/bin/python3 - "$1" <<'PY'
import socket, sys
s = [socket.socket() for _ in range(int(sys.argv[1]))]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])
PY
}
TURNOUT_PID=""

die() {
  echo "$BENCH_NAME: $1" >&2
  tail -40 "$WORK/turnout.log" >&2 || true
  exit 1
}

# api METHOD PATH [BODY]: the response body; a non-2xx status is an error
# (the reply on stderr).
api() {
  local out code
  out=$(curl -sS --max-time 3600 -X "$1" -H "Authorization: Bearer $TOKEN" -H 'X-Verbose: true' \
    ${3:+-H 'Content-Type: application/json' -d "$3"} -w '\n%{http_code}' "http://127.0.0.1:$ADMIN$2") || return 1
  code=${out##*$'\n'}
  out=${out%$'\n'*}
  if [[ $code != 2* ]]; then echo "$BENCH_NAME: $1 $2 → $code $out" >&2; return 1; fi
  echo "$out"
}

# start_turnout INSTANCE: one protocol route "pg" from DB on OLD to DB on NEW,
# a file state store and journal in WORK.
start_turnout() {
  echo "$TOKEN admin bench" >"$WORK/tokens"
  rm -f "$WORK/state.json"
  cat >"$WORK/turnout.yaml" <<YAML
instance_id: $1
admin:
  listen: 127.0.0.1:$ADMIN
  tokens_file: $WORK/tokens
state_store:
  path: $WORK/state.json
journal:
  path: $WORK/journal.log
backends:
  - {name: pg-old, protocol: postgres, address: "127.0.0.1:$OLD", user: $USER, password: $PGPASSWORD, database: $DB}
  - {name: pg-new, protocol: postgres, address: "127.0.0.1:$NEW", user: $USER, password: $PGPASSWORD, database: $DB}
routes:
  - {name: pg, protocol: postgres, mode: protocol, listen: "127.0.0.1:$PG", old: pg-old}
YAML
  "$BUILD/proxy/turnout" --config "$WORK/turnout.yaml" >"$WORK/turnout.log" 2>&1 &
  TURNOUT_PID=$!
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$ADMIN/healthz" >/dev/null 2>&1 && return 0; sleep 0.1; done
  die "turnout did not start"
}
stop_turnout() { kill "$TURNOUT_PID"; wait "$TURNOUT_PID" 2>/dev/null || true; TURNOUT_PID=""; }
