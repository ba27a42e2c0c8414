#!/usr/bin/env bash
# User-space instructions per request of a gateway binary, counted by callgrind: deterministic
# where timings on these shared machines are not, so two builds can be compared by one figure.
#
#   bench/run.sh --serve > /tmp/serve.env &      # the mock upstream and the benchmark's gateway
#   bench/instructions.sh /tmp/serve.env BIN [BODY] [N]
#
# Starts BIN (a `tollgate` release binary) under callgrind with a copy of the serving gateway's
# configuration and entities (its own data directory, the same upstream and gateway key), sends
# 300 requests to warm it, zeroes the counters, sends N (default 1000) with 4 connections, and
# prints the instructions of all its threads (journal writer included) per 200 response. BODY is
# one of the benchmark bodies (default small-json.json). Needs valgrind and oha.
set -euo pipefail

ENV_FILE=${1:?serve env file}
BIN=${2:?gateway binary}
BODY=${3:-small-json.json}
N=${4:-1000}
WARM=${WARM:-300}
OHA=${OHA:-$(command -v oha || echo /var/tmp/tollgate-tools/bin/oha)}
command -v valgrind > /dev/null || { echo "valgrind is missing" >&2; exit 1; }

# shellcheck disable=SC1090
source <(sed 's/^/export /' "$ENV_FILE")
SERVE_WORK=$(dirname "$BODIES")
WORK=$(mktemp -d /tmp/tollgate-instructions.XXXXXX)
mkdir -p "$WORK/data"
for f in admin.key master.key tollgate.db tollgate.db-shm tollgate.db-wal; do
  [ -e "$SERVE_WORK/tollgate-data/$f" ] && cp "$SERVE_WORK/tollgate-data/$f" "$WORK/data/"
done
sed "s#^data_dir = .*#data_dir = \"$WORK/data\"#" "$SERVE_WORK/tollgate.toml" > "$WORK/tollgate.toml"

valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.out" \
  "$BIN" serve --config "$WORK/tollgate.toml" > "$WORK/out" 2> "$WORK/err" &
VG=$!
trap 'kill $VG 2>/dev/null || true' EXIT
for _ in $(seq 600); do grep -q listening "$WORK/out" 2>/dev/null && break; sleep 0.1; done
URL=$(grep -o 'http://[0-9.:]*' "$WORK/out" | head -1)/v1/messages
load() {
  "$OHA" --no-tui -c 4 -m POST -D "$BODIES/$BODY" -H "x-api-key: $GATEWAY_KEY" \
    -H "content-type: application/json" -H "anthropic-version: 2023-06-01" "$@" "$URL"
}
load -n "$WARM" > /dev/null
sleep 0.5
callgrind_control -z "$VG" > /dev/null
load -n "$N" --output-format json > "$WORK/oha.json"
sleep 0.5
callgrind_control -d "$VG" > /dev/null
sleep 1
OK=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['statusCodeDistribution'].get('200', 0))" "$WORK/oha.json")
TOTAL=$(awk '/^totals:/ {print $2}' "$WORK/callgrind.out.1")
python3 -c "import sys; t, ok = int(sys.argv[1]), int(sys.argv[2]); print(f'{t / ok:,.0f} instructions per request ({ok} of {sys.argv[3]} answered 200); profile: {sys.argv[4]}')" \
  "$TOTAL" "$OK" "$N" "$WORK/callgrind.out.1"
