#!/usr/bin/env bash
# A registry of N clients (issue 14, item 4), on SQLite: seed, start, measure readiness, memory,
# the propagation and server CPU of one `client update`, a paginated `client list`, and token
# throughput next to a 10-client registry in the same run. Needs wrk. Loopback only.
#
#   benches/million.sh [N, default 1000000] [seconds per wrk run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-1000000}"
SECS="${2:-10}"
cargo build --release --quiet --bin tessera
BIN=$PWD/target/release/tessera
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
. benches/lib.sh

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_mib() { awk -v k="$2" '$1 == k":" {printf "%.0f", $2/1024}' "/proc/$1/status"; }

seed=$(python3 benches/seed_clients.py "$BIN" "$WORK/big" "$N")
secret=$(echo "$seed" | sed -E 's/.*"client_secret": "([^"]+)".*/\1/')
t0=$(date +%s.%N)
start_server big "$BIN" --data-dir "$WORK/big" serve --listen 127.0.0.1:0 --signing-alg ES256
t1=$(date +%s.%N)
BIGPID=$PID; BIG=$ADDR
echo "ready with $N clients: $(echo "$t1 - $t0" | bc) s; RSS $(rss_mib "$BIGPID" VmRSS) MiB (peak $(rss_mib "$BIGPID" VmHWM) MiB)"

# One update among N: time until the server issues the new scope; server CPU it cost.
id=tc_seed00000002
auth="Basic $(printf '%s:%s' "$id" "$secret" | base64 -w0)"
curl -sf -H "Authorization: $auth" -d grant_type=client_credentials "http://$BIG/oauth/token" >/dev/null
sleep 3
c0=$(cpu_ticks "$BIGPID"); sleep 2; idle=$(( $(cpu_ticks "$BIGPID") - c0 ))
c0=$(cpu_ticks "$BIGPID"); u0=$(date +%s.%N)
"$BIN" --data-dir "$WORK/big" client update "$id" --scope s2s:internal --scope fresh >/dev/null
u1=$(date +%s.%N)
until curl -sf -H "Authorization: $auth" -d "grant_type=client_credentials&scope=fresh" "http://$BIG/oauth/token" >/dev/null; do sleep 0.02; done
u2=$(date +%s.%N)
sleep 2
used=$(( $(cpu_ticks "$BIGPID") - c0 - idle ))
echo "client update: CLI $(echo "$u1 - $u0" | bc) s; seen by the server $(echo "$u2 - $u1" | bc) s after the CLI returned; server CPU beyond idle over the same 2 s window: $(( used * 10 )) ms (ticks of 10 ms)"

l0=$(date +%s.%N)
"$BIN" --data-dir "$WORK/big" client list --limit 1000 --output json >/dev/null 2>&1
l1=$(date +%s.%N)
"$BIN" --data-dir "$WORK/big" client list --limit 1000 --after tc_seed00500000 --output json >/dev/null 2>&1
l2=$(date +%s.%N)
echo "client list --limit 1000: first page $(echo "$l1 - $l0" | bc) s; a page in the middle $(echo "$l2 - $l1" | bc) s"

# Throughput: the same cached-secret request against the big registry and a 10-client one.
python3 benches/seed_clients.py "$BIN" "$WORK/small" 9 > "$WORK/small.json"
small_secret=$(sed -E 's/.*"client_secret": "([^"]+)".*/\1/' "$WORK/small.json")
start_server small "$BIN" --data-dir "$WORK/small" serve --listen 127.0.0.1:0 --signing-alg ES256
SMALL=$ADDR
small_auth="Basic $(printf '%s:%s' "tc_seed00000002" "$small_secret" | base64 -w0)"
curl -sf -H "Authorization: $small_auth" -d grant_type=client_credentials "http://$SMALL/oauth/token" >/dev/null
for round in 1 2; do
  for which in small big; do
    if [ $which = big ]; then a=$auth; h=$BIG; else a=$small_auth; h=$SMALL; fi
    r=$(AUTH="$a" BODY="grant_type=client_credentials" wrk -t2 -c64 -d"${SECS}s" -s benches/post.lua "http://$h/oauth/token" | grep RESULT)
    echo "round $round, $which registry: $r"
  done
done
echo "RSS after the load: $(rss_mib "$BIGPID" VmRSS) MiB"
