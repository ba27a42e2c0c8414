#!/usr/bin/env bash
# Proxy benchmark: direct vs nginx vs bare hyper vs tollgate in front of the fast mock upstream, on loopback;
# and the conversion matrix: tollgate to the same upstream as anthropic, bedrock and oai.
#
#   bench/run.sh [--quick] [--reps N] [--duration SECONDS] [--only proxy|conversion]
#   bench/run.sh --serve    # start the same setup, print its URLs, key and pids, and wait (for perf)
#
# Writes bench/results/latest.md and bench/results/latest.json (--only keeps the other matrix's
# previous results there). Needs bench/setup.sh first.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/tollgate-target}
TOLLGATE=${TOLLGATE_BIN:-$CARGO_TARGET_DIR/release/tollgate}
UPSTREAM=${UPSTREAM_BIN:-$CARGO_TARGET_DIR/release/scripted-upstream}
BARE=${BARE_BIN:-$CARGO_TARGET_DIR/release/bare-proxy}
OHA=${OHA:-$(command -v oha || echo /var/tmp/tollgate-tools/bin/oha)}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}

DURATION=10 REPS=3 WARMUP=1 ONLY=all SERVE=
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) DURATION=2 REPS=1 WARMUP=0 ;;
    --serve) SERVE=1 ;;
    --reps) REPS=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --only)
      case "${2:-}" in
        proxy|conversion) ONLY=$2 ;;
        *) echo "--only takes proxy or conversion" >&2; exit 2 ;;
      esac
      shift ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done

NEEDED=("$TOLLGATE" "$UPSTREAM" "$OHA")
[ "$ONLY" = conversion ] || NEEDED+=("$NGINX" "$BARE")
for bin in "${NEEDED[@]}"; do
  [ -x "$bin" ] || { echo "missing $bin (run bench/setup.sh)" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/tollgate-bench.XXXXXX)
# nginx workers drop to an unprivileged user and must reach their temp paths.
chmod 755 "$WORK"
PIDS=()
cleanup() {
  local rc=$?
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ $rc -ne 0 ]; then
    echo "failed (exit $rc); logs kept in $WORK" >&2
  elif [ -z "${KEEP_WORK:-}" ]; then
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits until FILE has a line matching REGEX while PID lives; prints that line.
wait_line() {
  local file=$1 regex=$2 pid=$3 line
  for _ in $(seq 1 300); do
    line=$(grep -m1 -E "$regex" "$file" 2>/dev/null || true)
    [ -n "$line" ] && { echo "$line"; return 0; }
    kill -0 "$pid" 2>/dev/null || { echo "process $pid exited; see $file" >&2; return 1; }
    sleep 0.1
  done
  echo "timed out waiting for /$regex/ in $file" >&2
  return 1
}

# Waits until something accepts connections on 127.0.0.1:PORT.
wait_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listening on port $1" >&2
  return 1
}

UPSTREAM_KEY="sk-ant-bench-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"

# --- mock upstream
"$UPSTREAM" --api-key "$UPSTREAM_KEY" --fast --listen 127.0.0.1:0 \
  >"$WORK/upstream.out" 2>"$WORK/upstream.err" &
UPSTREAM_PID=$!
PIDS+=("$UPSTREAM_PID")
UP_ADDR=$(wait_line "$WORK/upstream.out" '^LISTENING ' "$UPSTREAM_PID" | awk '{print $2}')
echo "upstream $UP_ADDR (pid $UPSTREAM_PID)" >&2

# --- nginx (proxy matrix only)
NGINX_ARGS=()
if [ "$ONLY" != conversion ]; then
  NGINX_PORT=$(python3 "$HERE/bench.py" free-port)
  mkdir -p "$WORK/nginx/logs"
  cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes auto;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/client_body;
  proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi;
  uwsgi_temp_path $WORK/nginx/uwsgi;
  scgi_temp_path $WORK/nginx/scgi;
  # Whole request bodies stay in memory (the default 16k would spool 120 KB bodies to disk).
  client_max_body_size 32m;
  client_body_buffer_size 256k;
  keepalive_requests 100000;
  upstream mock {
    server $UP_ADDR;
    keepalive 64;
    keepalive_requests 100000;
  }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / {
      proxy_pass http://mock;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      # Streams must reach the client event by event; one setting for both kinds of response
      # since nginx cannot tell them apart before the upstream answers.
      proxy_buffering off;
    }
  }
}
EOF
  "$NGINX" -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx/" >"$WORK/nginx/stdout" 2>&1 &
  NGINX_PID=$!
  PIDS+=("$NGINX_PID")
  wait_port "$NGINX_PORT"
  echo "nginx 127.0.0.1:$NGINX_PORT (pid $NGINX_PID)" >&2
  # The floor of the gateway's own HTTP stack: hyper in, hyper out, nothing in between.
  "$BARE" --upstream "$UP_ADDR" >"$WORK/bare.out" 2>"$WORK/bare.err" &
  BARE_PID=$!
  PIDS+=("$BARE_PID")
  BARE_ADDR=$(wait_line "$WORK/bare.out" '^LISTENING ' "$BARE_PID" | awk '{print $2}')
  echo "bare-proxy $BARE_ADDR (pid $BARE_PID)" >&2
  NGINX_ARGS=(--bare "http://$BARE_ADDR/v1/messages" --bare-pid "$BARE_PID"
    --nginx "http://127.0.0.1:$NGINX_PORT/v1/messages" --nginx-pid "$NGINX_PID"
    --nginx-version "$("$NGINX" -v 2>&1 | sed 's#.*nginx/##')")
fi

# --- tollgate
# Three providers on the same mock, which answers each dialect by path. anthropic comes first so
# it is the default the proxy matrix uses. bedrock gets static dummy keys so that SigV4 signing
# is on the measured path (the mock checks no signature).
TG_DATA="$WORK/tollgate-data"
cat >"$WORK/tollgate.toml" <<EOF
[server]
listen = "127.0.0.1:0"
data_dir = "$TG_DATA"

[[providers]]
name = "anthropic"
kind = "anthropic"
base_url = "http://$UP_ADDR"
api_key = "$UPSTREAM_KEY"

# Two more anthropic providers on the same mock: the three targets of the route cell.
[[providers]]
name = "anthropic-b"
kind = "anthropic"
base_url = "http://$UP_ADDR"
api_key = "$UPSTREAM_KEY"

[[providers]]
name = "anthropic-c"
kind = "anthropic"
base_url = "http://$UP_ADDR"
api_key = "$UPSTREAM_KEY"

[[providers]]
name = "bedrock"
kind = "bedrock"
region = "us-east-1"
endpoint = "http://$UP_ADDR"
access_key_id = "AKIABENCHMARK0000000"
secret_access_key = "bench/secret/key/not/a/real/one/000000000"

[[providers]]
name = "oai"
kind = "openai-compatible"
base_url = "http://$UP_ADDR"

# The anthropic id is the requested name itself, so that path forwards the body untouched.
[[models]]
name = "claude-sonnet-4-5"
providers = { anthropic = "claude-sonnet-4-5", bedrock = "us.anthropic.claude-sonnet-4-5-20250929-v1:0", oai = "gpt-bench" }

# The tollgate-route cell: every request planned over three weighted targets (session affinity
# on, the default), each sending the requested model id so the body still passes unchanged.
[[routes]]
name = "bench-three"
strategy = "weighted"
targets = [
  { provider = "anthropic", model = "claude-sonnet-4-5" },
  { provider = "anthropic-b", model = "claude-sonnet-4-5" },
  { provider = "anthropic-c", model = "claude-sonnet-4-5" },
]

[journal]
EOF
"$TOLLGATE" serve --config "$WORK/tollgate.toml" >"$WORK/tollgate.out" 2>"$WORK/tollgate.err" &
TG_PID=$!
PIDS+=("$TG_PID")
TG_URL=$(wait_line "$WORK/tollgate.out" 'tollgate listening on http://' "$TG_PID" \
  | sed -E 's#.*(http://[^ ]+).*#\1#')
echo "tollgate $TG_URL (pid $TG_PID)" >&2
GATEWAY_KEY=$("$TOLLGATE" keys create --user bench --team bench --name bench --json \
  --server "$TG_URL" --data-dir "$TG_DATA" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')

if [ -n "$SERVE" ]; then
  # Profiling needs the processes without the matrix: attach perf to TG_PID and drive load with
  # oha by hand, e.g. oha -z 10s -c 32 -m POST -D BODY -H "x-api-key: $GATEWAY_KEY" URL.
  python3 "$HERE/bench.py" bodies "$WORK/bodies" >/dev/null
  cat <<EOF
TG_URL=$TG_URL/v1/messages
DIRECT_URL=http://$UP_ADDR/v1/messages
GATEWAY_KEY=$GATEWAY_KEY
UPSTREAM_KEY=$UPSTREAM_KEY
TG_PID=$TG_PID
UPSTREAM_PID=$UPSTREAM_PID
BODIES=$WORK/bodies
EOF
  # A signal is how serving ends, not a failure: the work dir (its journal grows by hundreds of
  # MB under load) goes unless KEEP_WORK is set.
  trap 'exit 0' INT TERM
  wait "$TG_PID"
  exit 0
fi

COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "?")
if [ -n "$(git -C "$ROOT" status --porcelain -- crates 2>/dev/null)" ]; then COMMIT="$COMMIT+dirty"; fi

python3 "$HERE/bench.py" run \
  --work "$WORK" --out "$HERE/results" --oha "$OHA" \
  --direct "http://$UP_ADDR/v1/messages" \
  --tollgate "$TG_URL/v1/messages" \
  --upstream-key "$UPSTREAM_KEY" --gateway-key "$GATEWAY_KEY" \
  --upstream-pid "$UPSTREAM_PID" --tollgate-pid "$TG_PID" \
  --tollgate-bin "$TOLLGATE" --tollgate-data "$TG_DATA" \
  ${NGINX_ARGS[@]+"${NGINX_ARGS[@]}"} --commit "$COMMIT" \
  --duration "$DURATION" --reps "$REPS" --warmup "$WARMUP" --only "$ONLY" &
# In the background and waited for, so that a signal to this script runs the cleanup at once
# (bash defers traps until a foreground child returns) instead of leaving the matrix running.
BENCH_PID=$!
PIDS+=("$BENCH_PID")
wait "$BENCH_PID"

for f in "$WORK/tollgate.err" "$WORK/upstream.err" "$WORK/nginx/logs/error.log"; do
  tail_lines=$(grep -v -e 'admin key' -e 'shown once' "$f" 2>/dev/null | tail -n 5 || true)
  if [ -n "$tail_lines" ]; then
    printf -- '--- last lines of %s\n%s\n' "$f" "$tail_lines" >&2
  fi
done
