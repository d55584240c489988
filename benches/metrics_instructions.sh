#!/usr/bin/env bash
# What metrics cost the token endpoint, in instructions per request: the same binary under
# `valgrind --tool=callgrind`, once without and once with --metrics-listen, each sent the same
# N keep-alive token requests (ES256, SQLite, client_secret_basic, credential cached). Counts
# instructions, not seconds, so the result does not move with whatever else the machine runs
# (benches/metrics.sh measures req/s, which on a shared 2-core machine drifts by more than the
# few per cent this is about). Needs valgrind (callgrind_control) and python3. Loopback only.
#
#   benches/metrics_instructions.sh [BIN, default target/release/tessera] [N, default 20000]
#
# Counters are zeroed after a warm-up of 500 requests and dumped after the N; with metrics on,
# /metrics is scraped once in the middle (at ~25k req/s and a 15 s scrape interval a scrape
# comes every ~375k requests, so one per N overstates the scrape's share: a conservative bound).
# Throughput on a CPU-bound server goes as 1 / instructions per request, so off/on is the
# expected throughput ratio, before cache effects.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/tessera} N=${2:-20000}
command -v callgrind_control >/dev/null || { echo "valgrind is required (apt-get install valgrind)" >&2; exit 1; }
BIN=$(realpath "$BIN")
# shellcheck source=benches/lib.sh
. benches/lib.sh

# requests HOST:PORT AUTH COUNT: COUNT token requests on one keep-alive connection.
requests() {
    python3 - "$1" "$2" "$3" <<'EOF'
import http.client, sys
host, port = sys.argv[1].rsplit(":", 1)
conn = http.client.HTTPConnection(host, int(port), timeout=60)
headers = {"Authorization": sys.argv[2], "Content-Type": "application/x-www-form-urlencoded"}
for _ in range(int(sys.argv[3])):
    conn.request("POST", "/oauth/token", "grant_type=client_credentials&scope=s2s%3Ainternal", headers)
    r = conn.getresponse()
    r.read()
    if r.status != 200:
        sys.exit(f"status {r.status}")
EOF
}

measure() { # NAME EXTRA_FLAGS… → prints instructions per request
    local name=$1; shift
    local dir="$WORK/data-$name" out="$WORK/callgrind.$name"
    local json id secret auth
    json=$("$BIN" --data-dir "$dir" client create --name bench --scope s2s:internal --audience https://api.bench --output json)
    id=$(echo "$json" | sed -E 's/.*"client_id":"([^"]+)".*/\1/')
    secret=$(echo "$json" | sed -E 's/.*"client_secret":"([^"]+)".*/\1/')
    auth="Basic $(printf '%s:%s' "$id" "$secret" | base64 -w0)"
    start_server "$name" valgrind --tool=callgrind --callgrind-out-file="$out" \
        "$BIN" --data-dir "$dir" serve --listen 127.0.0.1:0 --signing-alg ES256 "$@"
    local pid=$PID
    requests "$ADDR" "$auth" 500
    callgrind_control -z "$pid" >/dev/null
    local metrics half=$((N / 2))
    metrics=$(grep -oE 'metrics=http://[0-9.:]+' "$WORK/$name.out" | head -n1 | sed 's#metrics=##' || true)
    requests "$ADDR" "$auth" "$half"
    [ -z "$metrics" ] || curl -sf "$metrics/metrics" >/dev/null
    requests "$ADDR" "$auth" $((N - half))
    callgrind_control -d "$pid" >/dev/null
    kill "$pid"; wait "$pid" 2>/dev/null || true
    # The dump made by -d is OUT.1 (OUT itself is what the process wrote at exit).
    local dump="$out.1" total
    total=$(grep -E '^(summary|totals):' "$dump" | head -n1 | awk '{ print $2 }')
    awk -v t="$total" -v n="$N" 'BEGIN { printf "%.0f\n", t / n }'
}

off=$(measure off)
on=$(measure on --metrics-listen 127.0.0.1:0)
echo "instructions per token request: metrics off $off, metrics on $on (+$((on - off)), $(awk -v a="$on" -v b="$off" 'BEGIN { printf "%.2f", 100 * (a - b) / b }') %)"
echo "expected throughput with metrics on, relative to off: $(awk -v a="$on" -v b="$off" 'BEGIN { printf "%.1f", 100 * b / a }') % ($N requests, $(date -u +%Y-%m-%d))"
