#!/usr/bin/env bash
# Load test of the token server on loopback, bounded in time. Needs `wrk` (Debian: apt-get
# install wrk). Prints a Markdown table for BENCHMARKS.md.
#
#   benches/run.sh [seconds per run, default 10] [connections, default 64]
#   BENCH_POSTGRES_URL=postgres://…/db benches/run.sh     # also the token endpoint on PostgreSQL
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

# shellcheck source=benches/lib.sh
. benches/lib.sh

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
    LAST_RPS=$rps
    echo "$label: $line" >&2
}

# token_run ALG [DATABASE_URL] — SQLite in a fresh data dir unless a database URL is given.
token_run() {
    local alg=$1 db=${2:-}
    local dir="$WORK/data-$alg${db:+-pg}"
    local dbargs=(--data-dir "$dir")
    local label="SQLite"
    if [ -n "$db" ]; then dbargs+=(--database-url "$db"); label="PostgreSQL"; fi
    start_server "tessera-$alg-$label" "$BIN" "${dbargs[@]}" serve --listen 127.0.0.1:0 --signing-alg "$alg"
    local pid=$PID addr=$ADDR
    local json id secret
    json=$("$BIN" "${dbargs[@]}" client create --name bench --scope s2s:internal --audience https://api.bench --output json)
    id=$(echo "$json" | sed -E 's/.*"client_id":"([^"]+)".*/\1/')
    secret=$(echo "$json" | sed -E 's/.*"client_secret":"([^"]+)".*/\1/')
    export AUTH="Basic $(printf '%s:%s' "$id" "$secret" | base64 -w0)"
    export BODY="grant_type=client_credentials&scope=s2s%3Ainternal"
    # Warm: the first request pays argon2id once; then check it really issues tokens.
    curl -sf -H "Authorization: $AUTH" -d "$BODY" "http://$addr/oauth/token" >/dev/null
    if [ "$alg" = ES256 ]; then
        # The machine's speed drifts over minutes, so the ceiling is measured right before each
        # ES256 run and the two are compared as a pair.
        AUTH="" BODY="" run_wrk "ceiling (paired with the next row)" "http://$CEIL_ADDR/token" benches/post.lua "$CPID"
        PAIR_CEIL=$LAST_RPS
    fi
    run_wrk "tessera /oauth/token $alg ($label)" "http://$addr/oauth/token" benches/post.lua "$pid"
    if [ "$alg" = ES256 ]; then
        RATIOS+=("ES256 ($label): $LAST_RPS / $PAIR_CEIL = $(awk -v a="$LAST_RPS" -v b="$PAIR_CEIL" 'BEGIN { printf "%.1f", 100 * a / b }') % of the ceiling")
    fi
    if [ "$alg" = ES256 ] && [ -z "$db" ]; then
        run_wrk "tessera /jwks.json" "http://$addr/jwks.json" benches/get.lua "$pid"
    fi
    kill "$pid"; wait "$pid" 2>/dev/null || true
}

# The ceiling stays up for the whole run (idle between its measurements).
start_server ceiling "$CEIL" 127.0.0.1:0
CPID=$PID
CEIL_ADDR=$ADDR
RATIOS=()

token_run ES256
token_run RS256

# PostgreSQL beside SQLite, in the same run, when a server is given:
#   BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test benches/run.sh
if [ -n "${BENCH_POSTGRES_URL:-}" ]; then
    command -v psql >/dev/null || { echo "psql is required for the PostgreSQL runs" >&2; exit 1; }
    BENCH_DB="tessera_bench_$$"
    psql "$BENCH_POSTGRES_URL" -qc "CREATE DATABASE $BENCH_DB" >/dev/null
    PG_URL="${BENCH_POSTGRES_URL%/*}/$BENCH_DB"
    token_run ES256 "$PG_URL"
    psql "$BENCH_POSTGRES_URL" -qc "DROP DATABASE $BENCH_DB WITH (FORCE)" >/dev/null
    BENCH_DB="tessera_bench_rs_$$"
    psql "$BENCH_POSTGRES_URL" -qc "CREATE DATABASE $BENCH_DB" >/dev/null
    token_run RS256 "${BENCH_POSTGRES_URL%/*}/$BENCH_DB"
    psql "$BENCH_POSTGRES_URL" -qc "DROP DATABASE $BENCH_DB WITH (FORCE)" >/dev/null
fi

echo
echo "wrk -t$THREADS -c$CONNS -d${SECS}s on $(nproc) cores, $(date -u +%Y-%m-%d) ($(uname -m))"
echo
echo "| endpoint | req/s | p50 ms | p99 ms | errors | peak RSS MiB |"
echo "|---|---:|---:|---:|---:|---:|"
printf '%s\n' "${ROWS[@]}"
echo
printf -- '- %s\n' "${RATIOS[@]}"
