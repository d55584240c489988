#!/usr/bin/env bash
# A registry of N clients (issue 14, item 4): seed, start, measure readiness, memory, the
# propagation and server CPU of one `client update`, a client not called since start, a
# paginated `client list`, and token throughput next to a 10-client registry in the same run.
# Needs wrk (and psql for PostgreSQL). Loopback only.
#
#   benches/million.sh [N, default 1000000] [seconds per wrk run, default 10]
#   ROUNDS=R  throughput rounds, each big and small, order alternating (default 4)
#   CACHE=K   passes --client-cache K to the big server(s) (default: the server's default)
#   PG=URL    a PostgreSQL server URL without a database (postgres://postgres@127.0.0.1:5432):
#             the big registry goes into a database `tessera_million_bench` there (dropped and
#             made anew), served by two replicas; the update is timed to reach both.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-1000000}"
SECS="${2:-10}"
cargo build --release --quiet --bin tessera
BIN=$PWD/target/release/tessera
. benches/lib.sh

rss_mib() { awk -v k="$2" '$1 == k":" {printf "%.0f", $2/1024}' "/proc/$1/status"; }
# CPU time of every thread of PID in microseconds (schedstat: nanoseconds on a CPU), finer than
# the 10 ms ticks of /proc/PID/stat.
cpu_us() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%d", s / 1000 }'; }
since() { echo "$(date +%s.%N) - $1" | bc; }

DB=(--data-dir "$WORK/big")
if [ -n "${PG:-}" ]; then
    psql -q -v ON_ERROR_STOP=1 "$PG/postgres" -c "DROP DATABASE IF EXISTS tessera_million_bench" \
        -c "CREATE DATABASE tessera_million_bench"
    DB+=(--database-url "$PG/tessera_million_bench")
    seed=$(python3 benches/seed_clients.py "$BIN" "$WORK/big" "$N" "$PG/tessera_million_bench")
    REPLICAS=(big big2)
else
    seed=$(python3 benches/seed_clients.py "$BIN" "$WORK/big" "$N")
    REPLICAS=(big)
fi
echo "seeded: $seed"
secret=$(echo "$seed" | sed -E 's/.*"client_secret": "([^"]+)".*/\1/')
declare -A ADDRS RPIDS
for r in "${REPLICAS[@]}"; do
    t0=$(date +%s.%N)
    start_server "$r" "$BIN" "${DB[@]}" serve --listen 127.0.0.1:0 --signing-alg ES256 ${CACHE:+--client-cache "$CACHE"}
    ADDRS[$r]=$ADDR; RPIDS[$r]=$PID
    echo "$r ready with $N clients: $(since "$t0") s; RSS $(rss_mib "$PID" VmRSS) MiB (peak $(rss_mib "$PID" VmHWM) MiB)"
done
BIG=${ADDRS[big]}; BIGPID=${RPIDS[big]}

token() { # ADDR AUTH [FORM] → succeeds when a token is issued
    curl -sf -H "Authorization: $2" -d "${3:-grant_type=client_credentials}" "http://$1/oauth/token" >/dev/null
}

# One update among N, twice. First its propagation: time until every replica issues the new
# scope, polling with the changed client. Then its cost alone, with another client nobody polls
# (a change empties the client's verified secrets, so the changed client's next call pays one
# argon2id check, ~34 ms, which is the call's cost, not the update's): each replica's CPU over
# a window of one refresh interval and a half after the CLI returns, beyond its idle CPU over
# an equal window just before.
id=tc_seed00000002
auth="Basic $(printf '%s:%s' "$id" "$secret" | base64 -w0)"
for r in "${REPLICAS[@]}"; do token "${ADDRS[$r]}" "$auth"; done
u0=$(date +%s.%N)
"$BIN" "${DB[@]}" client update "$id" --scope s2s:internal --scope fresh >/dev/null
u1=$(date +%s.%N)
echo "client update: the CLI took $(echo "$u1 - $u0" | bc) s"
for r in "${REPLICAS[@]}"; do
    polls=0
    until token "${ADDRS[$r]}" "$auth" "grant_type=client_credentials&scope=fresh"; do polls=$((polls + 1)); sleep 0.02; done
    echo "  seen by $r $(since "$u1") s after the CLI returned ($polls refused polls, every 20 ms)"
done
sleep 3
declare -A C0 IDLE
for r in "${REPLICAS[@]}"; do C0[$r]=$(cpu_us "${RPIDS[$r]}"); done
sleep 3
for r in "${REPLICAS[@]}"; do IDLE[$r]=$(( $(cpu_us "${RPIDS[$r]}") - C0[$r] )); C0[$r]=$(cpu_us "${RPIDS[$r]}"); done
"$BIN" "${DB[@]}" client update tc_seed00000003 --scope s2s:internal --scope fresh >/dev/null
sleep 3
for r in "${REPLICAS[@]}"; do
    used=$(( $(cpu_us "${RPIDS[$r]}") - C0[$r] - IDLE[$r] ))
    echo "  server CPU of $r for one update of another client, beyond its idle over 3 s (idle: $(( IDLE[$r] / 1000 )) ms): $(( used / 1000 )).$(( used % 1000 / 100 )) ms"
done
a3="Basic $(printf '%s:%s' tc_seed00000003 "$secret" | base64 -w0)"
for r in "${REPLICAS[@]}"; do
    token "${ADDRS[$r]}" "$a3" "grant_type=client_credentials&scope=fresh" || { echo "$r missed the second update" >&2; exit 1; }
done

# A client the server has not held since start (beyond --client-cache, if the registry is):
# its first token (a database read and one argon2id check), then a cached one.
cold=tc_seed00900000
[ "$N" -gt 900000 ] || cold=$(printf 'tc_seed%08d' $((N - 1)))
cold_auth="Basic $(printf '%s:%s' "$cold" "$secret" | base64 -w0)"
k0=$(date +%s.%N); token "$BIG" "$cold_auth"; k1=$(date +%s.%N)
for _ in 1 2 3 4 5; do token "$BIG" "$cold_auth"; done
echo "a client not called since start ($cold): first token $(echo "$k1 - $k0" | bc) s, the next five $(since "$k1") s (each a curl process)"

l0=$(date +%s.%N)
"$BIN" "${DB[@]}" client list --limit 1000 --output json >/dev/null 2>&1
l1=$(date +%s.%N)
"$BIN" "${DB[@]}" client list --limit 1000 --after tc_seed00500000 --output json >/dev/null 2>&1
echo "client list --limit 1000: first page $(echo "$l1 - $l0" | bc) s; a page in the middle $(since "$l1") s"

# Throughput: the same cached-secret request against the big registry and a 10-client one.
python3 benches/seed_clients.py "$BIN" "$WORK/small" 9 > "$WORK/small.json"
small_secret=$(sed -E 's/.*"client_secret": "([^"]+)".*/\1/' "$WORK/small.json")
start_server small "$BIN" --data-dir "$WORK/small" serve --listen 127.0.0.1:0 --signing-alg ES256
SMALL=$ADDR; SMALLPID=$PID
small_auth="Basic $(printf '%s:%s' "tc_seed00000002" "$small_secret" | base64 -w0)"
token "$SMALL" "$small_auth"
ratios=(); cratios=()
for round in $(seq 1 "${ROUNDS:-4}"); do
  order="small big"; [ $((round % 2)) -eq 0 ] && order="big small"
  for which in $order; do
    if [ $which = big ]; then a=$auth; h=$BIG; p=$BIGPID; else a=$small_auth; h=$SMALL; p=$SMALLPID; fi
    c0=$(cpu_us "$p")
    r=$(AUTH="$a" BODY="grant_type=client_credentials" wrk -t2 -c64 -d"${SECS}s" -s benches/post.lua "http://$h/oauth/token" | grep RESULT)
    rps=$(echo "$r" | sed -E 's/.*req_per_s=([0-9]+).*/\1/')
    # The server's CPU per request answered: less sensitive than req/s to other load.
    cpr=$(awk -v d=$(( $(cpu_us "$p") - c0 )) -v r="$rps" -v s="$SECS" 'BEGIN { printf "%.1f", d / (r * s) }')
    echo "round $round, $which registry: $r cpu_us_per_req=$cpr"
    eval "rps_$which=$rps cpr_$which=$cpr"
  done
  ratios+=("$(awk -v a="$rps_big" -v b="$rps_small" 'BEGIN { printf "%.1f", 100 * a / b }')")
  cratios+=("$(awk -v a="$cpr_big" -v b="$cpr_small" 'BEGIN { printf "%.1f", 100 * b / a }')")
  echo "  round $round: big / small ${ratios[-1]} % by req/s, ${cratios[-1]} % by CPU per request (small's / big's)"
done
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo "median big / small: $(median "${ratios[@]}") % by req/s, $(median "${cratios[@]}") % by CPU per request, over ${#ratios[@]} rounds"
echo "RSS of big after the load: $(rss_mib "$BIGPID" VmRSS) MiB (peak $(rss_mib "$BIGPID" VmHWM) MiB)"
