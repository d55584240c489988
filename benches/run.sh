#!/usr/bin/env bash
# Load test of the token server on loopback, bounded in time. Needs `wrk` (Debian: apt-get
# install wrk). Prints a Markdown table for BENCHMARKS.md.
#
#   benches/run.sh [seconds per run, default 10] [connections, default 64]
#
# Measures, in one run: the token endpoint with ES256 and RS256 keys (client_secret_basic, the
# credential cached after the first request, as in steady state), /jwks.json, and the ceiling: a
# bare axum endpoint that only signs an ES256 JWT (crates/tessera-server/examples/bench_ceiling.rs).
# Only 127.0.0.1 is ever contacted.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-10}"
CONNS="${2:-64}"
THREADS=2
command -v wrk >/dev/null || { echo "wrk is required (apt-get install wrk)" >&2; exit 1; }

cargo build --release --quiet --bin tessera
cargo build --release --quiet -p tessera-server --example bench_ceiling
BIN=target/release/tessera
CEIL=target/release/examples/bench_ceiling
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

# start_server NAME ARGS… → sets ADDR and PID
start_server() {
    local name=$1; shift
    "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    PID=$!
    PIDS+=("$PID")
    for _ in $(seq 1 200); do
        ADDR=$(grep -oE 'listening on http://[0-9.:]+' "$WORK/$name.out" | head -n1 | sed 's#listening on http://##' || true)
        [ -n "$ADDR" ] && return 0
        sleep 0.05
    done
    echo "$name did not start" >&2; cat "$WORK/$name.err" >&2; exit 1
}

peak_rss_mib() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }

# run_wrk LABEL URL SCRIPT → appends a table row
ROWS=()
run_wrk() {
    local label=$1 url=$2 script=$3 pid=$4
    local out
    out=$(wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" --latency -s "$script" "$url")
    local line
    line=$(echo "$out" | grep '^RESULT')
    local rps p50 p99 errs
    rps=$(echo "$line" | sed -E 's/.*req_per_s=([0-9]+).*/\1/')
    p50=$(echo "$line" | sed -E 's/.*p50_ms=([0-9.]+).*/\1/')
    p99=$(echo "$line" | sed -E 's/.*p99_ms=([0-9.]+).*/\1/')
    errs=$(echo "$line" | sed -E 's/.*errors=([0-9]+).*/\1/')
    ROWS+=("| $label | $rps | $p50 | $p99 | $errs | $(peak_rss_mib "$pid") |")
    echo "$label: $line" >&2
}

token_run() {
    local alg=$1
    local dir="$WORK/data-$alg"
    start_server "tessera-$alg" "$BIN" --data-dir "$dir" serve --listen 127.0.0.1:0 --signing-alg "$alg"
    local pid=$PID addr=$ADDR
    local json id secret
    json=$("$BIN" --data-dir "$dir" client create --name bench --scope s2s:internal --audience https://api.bench --output json)
    id=$(echo "$json" | sed -E 's/.*"client_id":"([^"]+)".*/\1/')
    secret=$(echo "$json" | sed -E 's/.*"client_secret":"([^"]+)".*/\1/')
    export AUTH="Basic $(printf '%s:%s' "$id" "$secret" | base64 -w0)"
    export BODY="grant_type=client_credentials&scope=s2s%3Ainternal"
    # Warm: the first request pays argon2id once; then check it really issues tokens.
    curl -sf -H "Authorization: $AUTH" -d "$BODY" "http://$addr/oauth/token" >/dev/null
    run_wrk "tessera /oauth/token $alg" "http://$addr/oauth/token" benches/post.lua "$pid"
    if [ "$alg" = ES256 ]; then
        run_wrk "tessera /jwks.json" "http://$addr/jwks.json" benches/get.lua "$pid"
    fi
    kill "$pid"; wait "$pid" 2>/dev/null || true
}

start_server ceiling "$CEIL" 127.0.0.1:0
CPID=$PID
AUTH="" BODY="" run_wrk "ceiling: bare axum + ES256 sign" "http://$ADDR/token" benches/post.lua "$CPID"
kill "$CPID"; wait "$CPID" 2>/dev/null || true

token_run ES256
token_run RS256

echo
echo "wrk -t$THREADS -c$CONNS -d${SECS}s on $(nproc) cores, $(date -u +%Y-%m-%d) ($(uname -m))"
echo
echo "| endpoint | req/s | p50 ms | p99 ms | errors | peak RSS MiB |"
echo "|---|---:|---:|---:|---:|---:|"
printf '%s\n' "${ROWS[@]}"
