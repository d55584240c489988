#!/usr/bin/env bash
# The token endpoint over TLS next to plain HTTP, in one run. Needs `wrk` (built with OpenSSL, as
# Debian's is) and the `openssl` CLI. Only 127.0.0.1 is contacted.
#
#   benches/tls.sh [seconds per run, default 10] [connections, default 64] [rounds, default 2]
#
# Three servers from the same release binary, each with its own SQLite data directory and an
# ES256 signing key: plain HTTP, HTTPS with an ECDSA P-256 certificate, HTTPS with an RSA-2048
# certificate (cert-manager's default key). Each is measured with keep-alive (wrk, its
# connections stay open) and with a new connection per request (`Connection: close`), made by
# `crates/tessera-server/examples/tls_load.rs`: over HTTPS once with full handshakes (no session
# cache: what a first connection, or a client without a session cache, pays) and once resuming
# sessions (rustls' client cache, shared by the connections: with many at once some find no ticket
# left and make a full handshake, so the row says how many resumed). wrk is not used
# for new connections because it always resumes. Every request is client_secret_basic with the
# credential cached. The runs are interleaved, round after round, so the machine's drift hits
# each alike; the table gives each row's mean over the rounds, and the CPU time each request cost
# the server and the load generator (which share the two cores).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-10}"
CONNS="${2:-64}"
ROUNDS="${3:-2}"
THREADS=2
command -v wrk >/dev/null || { echo "wrk is required (apt-get install wrk)" >&2; exit 1; }
command -v openssl >/dev/null || { echo "the openssl CLI is required" >&2; exit 1; }

cargo build --release --quiet --bin tessera
cargo build --release --quiet -p tessera-server --example tls_load
BIN=target/release/tessera
LOAD=target/release/examples/tls_load

# shellcheck source=benches/lib.sh
. benches/lib.sh

# cert NAME KEYOPTS → $WORK/NAME-ca.pem, $WORK/NAME-cert.pem, $WORK/NAME-key.pem (for IP:127.0.0.1)
cert() {
    local n="$WORK/$1"; shift
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=bench CA" -keyout "$n-ca-key.pem" -out "$n-ca.pem" 2>/dev/null
    openssl req -newkey "$@" -nodes -subj /CN=127.0.0.1 -keyout "$n-key.pem" -out "$n.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1\n' >"$n.ext"
    openssl x509 -req -in "$n.csr" -CA "$n-ca.pem" -CAkey "$n-ca-key.pem" -CAcreateserial \
        -days 2 -extfile "$n.ext" -out "$n-cert.pem" 2>/dev/null
}
cert ec ec -pkeyopt ec_paramgen_curve:P-256
cert rsa rsa:2048

# server NAME [serve flags…] → URL[NAME], AUTHS[NAME], SPID[NAME]; HTTPS when given flags (--tls-…)
declare -A URL SADDR AUTHS SPID
server() {
    local name=$1; shift
    local dir="$WORK/data-$name"
    start_server "$name" "$BIN" --data-dir "$dir" serve --listen 127.0.0.1:0 --signing-alg ES256 "$@"
    local scheme=http curl_tls=()
    if [ $# -gt 0 ]; then scheme=https; curl_tls=(--cacert "$WORK/$name-ca.pem"); fi
    URL[$name]="$scheme://$ADDR/oauth/token"
    SADDR[$name]=$ADDR
    SPID[$name]=$PID
    local json id secret
    json=$("$BIN" --data-dir "$dir" client create --name bench --scope s2s:internal --audience https://api.bench --output json)
    id=$(echo "$json" | sed -E 's/.*"client_id":"([^"]+)".*/\1/')
    secret=$(echo "$json" | sed -E 's/.*"client_secret":"([^"]+)".*/\1/')
    AUTHS[$name]="Basic $(printf '%s:%s' "$id" "$secret" | base64 -w0)"
    # Warm (argon2id once) and check that it issues tokens, the certificate verified by curl.
    curl -sf "${curl_tls[@]}" -H "Authorization: ${AUTHS[$name]}" -d grant_type=client_credentials "${URL[$name]}" >/dev/null
}
server plain
server ec --tls-cert "$WORK/ec-cert.pem" --tls-key "$WORK/ec-key.pem"
server rsa --tls-cert "$WORK/rsa-cert.pem" --tls-key "$WORK/rsa-key.pem"

# CPU time of a process so far, in clock ticks.
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
TCK=$(getconf CLK_TCK)

declare -A SUM_RPS SUM_P50 SUM_P99 SUM_ERR SUM_SCPU SUM_WCPU SUM_REQS SUM_RESUMED
LABELS=()
# run NAME MODE: MODE is keep-alive (wrk), or new (plain), full or resumed (tls_load); also the
# CPU each request cost the server and the load generator.
run() {
    local name=$1 mode=$2
    local line s0 s1 wcpu
    export AUTH=${AUTHS[$name]} BODY="grant_type=client_credentials&scope=s2s%3Ainternal"
    s0=$(ticks "${SPID[$name]}")
    if [ "$mode" = keep-alive ]; then
        wcpu=$( { TIMEFORMAT='%U %S'; time wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" --latency \
            -s benches/post.lua "${URL[$name]}" >"$WORK/wrk.out"; } 2>&1 | awk '{ print $1 + $2 }')
    else
        local how=$mode
        [ "$mode" = new ] && how=plain
        wcpu=$( { TIMEFORMAT='%U %S'; time "$LOAD" "${SADDR[$name]}" "$WORK/$name-ca.pem" "$how" \
            "$SECS" "$CONNS" >"$WORK/wrk.out"; } 2>&1 | awk '{ print $1 + $2 }')
    fi
    s1=$(ticks "${SPID[$name]}")
    line=$(grep '^RESULT' "$WORK/wrk.out")
    echo "round $r, $name, $mode: $line server_cpu_s=$(( (s1 - s0) / TCK )) load_cpu_s=$wcpu" >&2
    local key="$name|$mode" reqs
    reqs=$(awk -v v="$(echo "$line" | sed -E 's/.*req_per_s=([0-9]+).*/\1/')" -v d="$SECS" 'BEGIN { print v * d }')
    [ -n "${SUM_RPS[$key]:-}" ] || { LABELS+=("$key"); SUM_RPS[$key]=0; SUM_P50[$key]=0; SUM_P99[$key]=0; SUM_ERR[$key]=0; SUM_SCPU[$key]=0; SUM_WCPU[$key]=0; SUM_REQS[$key]=0; SUM_RESUMED[$key]=0; }
    SUM_REQS[$key]=$(awk -v s="${SUM_REQS[$key]}" -v n="$reqs" 'BEGIN { print s + n }')
    case $line in *resumed=*) SUM_RESUMED[$key]=$(( SUM_RESUMED[$key] + $(echo "$line" | sed -E 's/.*resumed=([0-9]+).*/\1/') )) ;; esac
    SUM_SCPU[$key]=$(awk -v s="${SUM_SCPU[$key]}" -v t="$((s1 - s0))" -v k="$TCK" -v n="$reqs" 'BEGIN { print s + 1e6 * t / k / n }')
    SUM_WCPU[$key]=$(awk -v s="${SUM_WCPU[$key]}" -v c="$wcpu" -v n="$reqs" 'BEGIN { print s + 1e6 * c / n }')
    SUM_RPS[$key]=$(awk -v s="${SUM_RPS[$key]}" -v v="$(echo "$line" | sed -E 's/.*req_per_s=([0-9]+).*/\1/')" 'BEGIN { print s + v }')
    SUM_P50[$key]=$(awk -v s="${SUM_P50[$key]}" -v v="$(echo "$line" | sed -E 's/.*p50_ms=([0-9.]+).*/\1/')" 'BEGIN { print s + v }')
    SUM_P99[$key]=$(awk -v s="${SUM_P99[$key]}" -v v="$(echo "$line" | sed -E 's/.*p99_ms=([0-9.]+).*/\1/')" 'BEGIN { print s + v }')
    SUM_ERR[$key]=$(( SUM_ERR[$key] + $(echo "$line" | sed -E 's/.*errors=([0-9]+).*/\1/') ))
}

for r in $(seq 1 "$ROUNDS"); do
    for name in plain ec rsa; do run "$name" keep-alive; done
    run plain new
    for name in ec rsa; do run "$name" full; run "$name" resumed; done
done

describe() {
    case $1 in
        plain) echo "plain HTTP" ;;
        ec) echo "HTTPS, ECDSA P-256 certificate" ;;
        rsa) echo "HTTPS, RSA-2048 certificate" ;;
    esac
}
echo
echo "wrk -t$THREADS -c$CONNS -d${SECS}s, $ROUNDS rounds interleaved, on $(nproc) cores, $(date -u +%Y-%m-%d) ($(uname -m))"
echo
echo "| /oauth/token (ES256 key) | connections | req/s | of plain HTTP | p50 ms | p99 ms | errors | server CPU µs/req | load generator CPU µs/req | peak RSS MiB |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for key in "${LABELS[@]}"; do
    name=${key%%|*} mode=${key#*|}
    rps=$(awk -v s="${SUM_RPS[$key]}" -v n="$ROUNDS" 'BEGIN { printf "%.0f", s / n }')
    base_mode=new
    [ "$mode" = keep-alive ] && base_mode=keep-alive
    base=$(awk -v s="${SUM_RPS[plain|$base_mode]}" -v n="$ROUNDS" 'BEGIN { printf "%.0f", s / n }')
    case $mode in
        keep-alive) what="keep-alive (wrk)" ;;
        new) what="new per request (tls_load)" ;;
        full) what="new per request, full handshake (tls_load)" ;;
        resumed) what="new per request, session cache on: $(awk -v a="${SUM_RESUMED[$key]}" -v n="${SUM_REQS[$key]}" 'BEGIN { printf "%.0f", 100 * a / n }') % resumed (tls_load)" ;;
    esac
    printf '| %s | %s | %s | %s %% | %s | %s | %s | %s | %s | %s |\n' "$(describe "$name")" "$what" "$rps" \
        "$(awk -v a="$rps" -v b="$base" 'BEGIN { printf "%.1f", 100 * a / b }')" \
        "$(awk -v s="${SUM_P50[$key]}" -v n="$ROUNDS" 'BEGIN { printf "%.2f", s / n }')" \
        "$(awk -v s="${SUM_P99[$key]}" -v n="$ROUNDS" 'BEGIN { printf "%.2f", s / n }')" \
        "${SUM_ERR[$key]}" \
        "$(awk -v s="${SUM_SCPU[$key]}" -v n="$ROUNDS" 'BEGIN { printf "%.0f", s / n }')" \
        "$(awk -v s="${SUM_WCPU[$key]}" -v n="$ROUNDS" 'BEGIN { printf "%.0f", s / n }')" \
        "$(awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/${SPID[$name]}/status")"
done
