#!/usr/bin/env bash
# The token endpoint with metrics on and off, in one run: the same binary twice, one server with
# --metrics-listen (scraped every SCRAPE seconds while it is measured, as Prometheus would), one
# without, interleaved so the machine's drift hits both alike. Needs `wrk` and `curl`. Only
# 127.0.0.1 is contacted.
#
#   benches/metrics.sh [BIN, default target/release/tessera] [rounds, default 8] [seconds, default 8]
#   SCRAPE=5 (seconds between scrapes)
#   CONTROL=1 also runs a second server without metrics (the control): its ratio to the first
#   shows how far two identical servers differ in this run, the noise the on/off ratio carries.
#
# Each round measures off then on (on first in even rounds): ES256, SQLite, client_secret_basic
# with the credential cached, `wrk -t2 -c64`. Prints each pair with its throughput ratio and each
# server's CPU per request (user + system time from /proc/PID/stat over the run, divided by the
# requests answered: less sensitive than req/s to other load on the machine), then the medians,
# and the token count the on server's /metrics reports.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/tessera} ROUNDS=${2:-8} SECS=${3:-8} SCRAPE=${SCRAPE:-5}
command -v wrk >/dev/null || { echo "wrk is required (apt-get install wrk)" >&2; exit 1; }

# shellcheck source=benches/lib.sh
. benches/lib.sh

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; } # user + system clock ticks of PID
HZ=$(getconf CLK_TCK)

rps() { # PID URL AUTH BODY → "req/s µs-CPU-per-request"; a run with any error (a refusal
        # counts) stops the comparison
    local line t0 t1 r
    t0=$(ticks "$1")
    line=$(AUTH=$3 BODY=$4 wrk -t2 -c64 -d"${SECS}s" -s benches/post.lua "$2" | grep '^RESULT')
    t1=$(ticks "$1")
    case "$line" in *" errors=0"*) ;; *) echo "errors in a run against $2: $line" >&2; exit 1 ;; esac
    r=$(echo "$line" | sed -E 's/.*req_per_s=([0-9]+).*/\1/')
    awk -v r="$r" -v d=$((t1 - t0)) -v hz="$HZ" -v s="$SECS" 'BEGIN { printf "%d %.1f\n", r, 1e6 * d / hz / (r * s) }'
}

server() { # NAME EXTRA_FLAGS… → SADDR, SAUTH, SPID
    local name=$1; shift
    local dir="$WORK/data-$name"
    start_server "$name" "$BIN" --data-dir "$dir" serve --listen 127.0.0.1:0 --signing-alg ES256 "$@"
    SADDR=$ADDR; SPID=$PID
    local json id secret
    json=$("$BIN" --data-dir "$dir" client create --name bench --scope s2s:internal --audience https://api.bench --output json)
    id=$(echo "$json" | sed -E 's/.*"client_id":"([^"]+)".*/\1/')
    secret=$(echo "$json" | sed -E 's/.*"client_secret":"([^"]+)".*/\1/')
    SAUTH="Basic $(printf '%s:%s' "$id" "$secret" | base64 -w0)"
    curl -sf -H "Authorization: $SAUTH" -d "grant_type=client_credentials" "http://$SADDR/oauth/token" >/dev/null
}

server off; OFF_ADDR=$SADDR; OFF_AUTH=$SAUTH; OFF_PID=$SPID
server on --metrics-listen 127.0.0.1:0; ON_ADDR=$SADDR; ON_AUTH=$SAUTH; ON_PID=$SPID
METRICS=$(grep -oE 'metrics=http://[0-9.:]+' "$WORK/on.out" | head -n1 | sed 's#metrics=##')
[ -n "$METRICS" ] || { echo "the on server names no metrics listener" >&2; exit 1; }
BODY="grant_type=client_credentials&scope=s2s%3Ainternal"

rps_on() { # the on server, scraped every SCRAPE seconds while wrk runs
    ( while :; do curl -sf "$METRICS/metrics" >/dev/null; sleep "$SCRAPE"; done ) &
    local scraper=$!
    rps "$ON_PID" "http://$ON_ADDR/oauth/token" "$ON_AUTH" "$BODY"
    kill "$scraper"; wait "$scraper" 2>/dev/null || true
}

if [ "${CONTROL:-0}" = 1 ]; then
    server ctl; CTL_ADDR=$SADDR; CTL_AUTH=$SAUTH; CTL_PID=$SPID
    ORDERS=("off on ctl" "on ctl off" "ctl off on")
else
    ORDERS=("off on" "on off")
fi

RATIOS=(); CTL_RATIOS=(); OFF_CPU=(); ON_CPU=(); CTL_CPU=()
for r in $(seq 1 "$ROUNDS"); do
    # Each server takes each position in turn, so drift within a round hits all alike.
    for which in ${ORDERS[$((r % ${#ORDERS[@]}))]}; do
        case $which in
            off) read -r off offc < <(rps "$OFF_PID" "http://$OFF_ADDR/oauth/token" "$OFF_AUTH" "$BODY") ;;
            on) read -r on onc < <(rps_on) ;;
            ctl) read -r ctl ctlc < <(rps "$CTL_PID" "http://$CTL_ADDR/oauth/token" "$CTL_AUTH" "$BODY") ;;
        esac
    done
    ratio=$(awk -v a="$on" -v b="$off" 'BEGIN { printf "%.1f", 100 * a / b }')
    RATIOS+=("$ratio"); OFF_CPU+=("$offc"); ON_CPU+=("$onc")
    line="round $r: off $off req/s ($offc us CPU/req), on $on req/s ($onc us CPU/req): on/off $ratio %"
    if [ "${CONTROL:-0}" = 1 ]; then
        cratio=$(awk -v a="$ctl" -v b="$off" 'BEGIN { printf "%.1f", 100 * a / b }')
        CTL_RATIOS+=("$cratio"); CTL_CPU+=("$ctlc")
        line="$line; control $ctl req/s ($ctlc us CPU/req): control/off $cratio %"
    fi
    echo "$line"
done
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo "median on/off: $(median "${RATIOS[@]}") %; median CPU per request: off $(median "${OFF_CPU[@]}") us, on $(median "${ON_CPU[@]}") us ($ROUNDS rounds of ${SECS}s, scrape every ${SCRAPE}s, $(nproc) cores, $(date -u +%Y-%m-%d))"
if [ "${CONTROL:-0}" = 1 ]; then
    echo "median control/off: $(median "${CTL_RATIOS[@]}") %; median CPU per request of the control: $(median "${CTL_CPU[@]}") us"
fi
curl -sf "$METRICS/metrics" | grep -E '^tessera_(tokens_issued_total|http_request_duration_seconds_count)' || true
