#!/usr/bin/env bash
# Token requests/s for the secretless callers next to the cached client-secret path, in one run
# on each backend (issue 17). Needs `wrk` (Debian: apt-get install wrk).
#
#   benches/secretless.sh [seconds per run, default 10] [connections, default 64] [rounds, default 2]
#   BENCH_POSTGRES_URL=postgres://…/db benches/secretless.sh    # PostgreSQL as well as SQLite
#
# Three request kinds, interleaved round by round so drift hits each alike:
#   secret     client_secret_basic, the credential cached after the first request (steady state);
#   pkjwt      private_key_jwt with an ES256 assertion, a fresh jti per request: one signature
#              check, one INSERT into the shared replay table, one token signature;
#   federated  the JWT-bearer grant with an ES256 external token (a trust with a JWKS file):
#              one signature check, one token signature.
# Assertions are signed before the timed part (examples/assertions.rs), each used once.
# Only 127.0.0.1 is ever contacted.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-10}"
CONNS="${2:-64}"
ROUNDS="${3:-2}"
THREADS=2
command -v wrk >/dev/null || { echo "wrk is required (apt-get install wrk)" >&2; exit 1; }

cargo build --release --quiet --bin tessera --example assertions
BIN=target/release/tessera
GEN=target/release/examples/assertions

# shellcheck source=benches/lib.sh
. benches/lib.sh

# wrk_rps LABEL SCRIPT URL → prints the RESULT line to stderr, sets RPS and ERRS
wrk_rps() {
    local label=$1 script=$2 url=$3 line
    line=$(wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" --latency -s "$script" "$url" | grep '^RESULT')
    echo "$label: $line" >&2
    RPS=$(echo "$line" | sed -E 's/.*req_per_s=([0-9]+).*/\1/')
    P99=$(echo "$line" | sed -E 's/.*p99_ms=([0-9.]+).*/\1/')
    ERRS=$(echo "$line" | sed -E 's/.*errors=([0-9]+).*/\1/')
}

json_field() { sed -E "s/.*\"$1\":\"([^\"]+)\".*/\1/"; }

ROWS=()
backend_run() {
    local label=$1; shift
    local dbargs=("$@")
    "$BIN" "${dbargs[@]}" keypair --alg ES256 --private-key-out "$WORK/$label-key.pem" --jwks-out "$WORK/$label-jwks.json" >/dev/null
    start_server "tessera-$label" "$BIN" "${dbargs[@]}" serve --listen 127.0.0.1:0 --signing-alg ES256
    local addr=$ADDR issuer="http://$ADDR"
    local json id secret pk fed
    json=$("$BIN" "${dbargs[@]}" client create --name bench-secret --scope s2s:internal --output json)
    id=$(echo "$json" | json_field client_id); secret=$(echo "$json" | json_field client_secret)
    pk=$("$BIN" "${dbargs[@]}" client create --name bench-pkjwt --scope s2s:internal --output json \
        --auth private_key_jwt --jwks-file "$WORK/$label-jwks.json" | json_field client_id)
    fed=$("$BIN" "${dbargs[@]}" client create --name bench-fed --scope s2s:internal --output json | json_field client_id)
    "$BIN" "${dbargs[@]}" trust add --name "bench-$label-$$" --issuer https://ci.bench.example --audience tessera \
        --subject repo:acme/app:ref:refs/heads/main --jwks-file "$WORK/$label-jwks.json" --client "$fed" >/dev/null
    local auth="Basic $(printf '%s:%s' "$id" "$secret" | base64 -w0)"
    local fed_body
    fed_body=$("$GEN" federated "$WORK/$label-key.pem" "$WORK/$label-jwks.json" https://ci.bench.example \
        repo:acme/app:ref:refs/heads/main tessera)
    # Warm each path once (argon2id for the secret; keys, trust), and check each issues tokens.
    sleep 1
    curl -sf -H "Authorization: $auth" -d "grant_type=client_credentials" "$issuer/oauth/token" >/dev/null
    curl -sf -d "$fed_body" "$issuer/oauth/token" >/dev/null
    local per_round=$(( SECS * 40000 ))
    local s_sum=0 p_sum=0 f_sum=0
    for r in $(seq 1 "$ROUNDS"); do
        "$GEN" client "$WORK/$label-key.pem" "$WORK/$label-jwks.json" "$pk" "$issuer" "$per_round" > "$WORK/pk-$r.txt"
        curl -sf -d "$(head -n1 "$WORK/pk-$r.txt")" "$issuer/oauth/token" >/dev/null
        AUTH="$auth" BODY="grant_type=client_credentials" wrk_rps "secret r$r ($label)" benches/post.lua "$issuer/oauth/token"
        [ "$ERRS" = 0 ] || { echo "secret run had errors" >&2; exit 1; }
        s_sum=$((s_sum + RPS)); local s_p99=$P99
        FILE="$WORK/pk-$r.txt" THREADS=$THREADS wrk_rps "pkjwt r$r ($label)" benches/assertions.lua "$issuer/oauth/token"
        [ "$ERRS" = 0 ] || { echo "pkjwt run had errors (too few assertions?)" >&2; exit 1; }
        p_sum=$((p_sum + RPS)); local p_p99=$P99
        AUTH="" BODY="$fed_body" wrk_rps "federated r$r ($label)" benches/post.lua "$issuer/oauth/token"
        [ "$ERRS" = 0 ] || { echo "federated run had errors" >&2; exit 1; }
        f_sum=$((f_sum + RPS)); local f_p99=$P99
        rm -f "$WORK/pk-$r.txt"
    done
    local s=$((s_sum / ROUNDS)) p=$((p_sum / ROUNDS)) f=$((f_sum / ROUNDS))
    pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", 100 * a / b }'; }
    ROWS+=("| $label | $s | $p ($(pct "$p" "$s") %) | $f ($(pct "$f" "$s") %) |")
    kill "$PID" 2>/dev/null || true
}

backend_run SQLite --data-dir "$WORK/data"
if [ -n "${BENCH_POSTGRES_URL:-}" ]; then
    backend_run PostgreSQL --data-dir "$WORK/data-pg" --database-url "$BENCH_POSTGRES_URL"
fi

echo
echo "$THREADS wrk threads, $CONNS connections, ${SECS}s per run, mean of $ROUNDS interleaved rounds; token requests/s (share of the secret path):"
echo
echo "| backend | client secret (cached) | private_key_jwt ES256 | JWT-bearer ES256 (federated) |"
echo "|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
