#!/usr/bin/env bash
# Before/after comparison of the token endpoint, in one run: two `tessera` binaries (e.g. the
# release build of the previous main and of the change) against the same ceiling, interleaved
# so the machine's drift hits both alike. Needs `wrk`. Only 127.0.0.1 is contacted.
#
#   benches/compare.sh BEFORE_BIN AFTER_BIN CEILING_BIN [rounds, default 3] [seconds, default 8]
#
# Each round measures: ceiling, BEFORE, ceiling, AFTER (AFTER first in even rounds) (ES256, SQLite, client_secret_basic with
# the credential cached, 64 connections). Prints each figure and each one's ratio to the ceiling
# measured right before it, then the median ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
BEFORE=$1 AFTER=$2 CEIL=$3 ROUNDS=${4:-3} SECS=${5:-8}
command -v wrk >/dev/null || { echo "wrk is required (apt-get install wrk)" >&2; exit 1; }

# shellcheck source=benches/lib.sh
. benches/lib.sh

rps() { # URL AUTH BODY → req/s; a run with any error (a refusal counts) stops the comparison
    local line
    line=$(AUTH=$2 BODY=$3 wrk -t2 -c64 -d"${SECS}s" -s benches/post.lua "$1" | grep '^RESULT')
    case "$line" in *" errors=0"*) ;; *) echo "errors in a run against $1: $line" >&2; exit 1 ;; esac
    echo "$line" | sed -E 's/.*req_per_s=([0-9]+).*/\1/'
}

server() { # NAME BIN → SADDR, SAUTH
    local dir="$WORK/data-$1"
    start_server "$1" "$2" --data-dir "$dir" serve --listen 127.0.0.1:0 --signing-alg ES256
    SADDR=$ADDR
    local json id secret
    json=$("$2" --data-dir "$dir" client create --name bench --scope s2s:internal --audience https://api.bench --output json)
    id=$(echo "$json" | sed -E 's/.*"client_id":"([^"]+)".*/\1/')
    secret=$(echo "$json" | sed -E 's/.*"client_secret":"([^"]+)".*/\1/')
    SAUTH="Basic $(printf '%s:%s' "$id" "$secret" | base64 -w0)"
    curl -sf -H "Authorization: $SAUTH" -d "grant_type=client_credentials" "http://$SADDR/oauth/token" >/dev/null
}

start_server ceiling "$CEIL" 127.0.0.1:0; CEIL_ADDR=$ADDR
server before "$BEFORE"; B_ADDR=$SADDR; B_AUTH=$SAUTH
server after "$AFTER"; A_ADDR=$SADDR; A_AUTH=$SAUTH
BODY="grant_type=client_credentials&scope=s2s%3Ainternal"
B_RATIOS=(); A_RATIOS=()
for r in $(seq 1 "$ROUNDS"); do
    # Alternate which goes first, so neither always follows the other.
    if [ $((r % 2)) -eq 1 ]; then
        c1=$(rps "http://$CEIL_ADDR/token" "" "")
        b=$(rps "http://$B_ADDR/oauth/token" "$B_AUTH" "$BODY")
        c2=$(rps "http://$CEIL_ADDR/token" "" "")
        a=$(rps "http://$A_ADDR/oauth/token" "$A_AUTH" "$BODY")
    else
        c2=$(rps "http://$CEIL_ADDR/token" "" "")
        a=$(rps "http://$A_ADDR/oauth/token" "$A_AUTH" "$BODY")
        c1=$(rps "http://$CEIL_ADDR/token" "" "")
        b=$(rps "http://$B_ADDR/oauth/token" "$B_AUTH" "$BODY")
    fi
    br=$(awk -v a="$b" -v c="$c1" 'BEGIN { printf "%.1f", 100 * a / c }')
    ar=$(awk -v a="$a" -v c="$c2" 'BEGIN { printf "%.1f", 100 * a / c }')
    B_RATIOS+=("$br"); A_RATIOS+=("$ar")
    echo "round $r: ceiling $c1, before $b ($br %) | ceiling $c2, after $a ($ar %)"
done
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo "median ratio to the ceiling: before $(median "${B_RATIOS[@]}") %, after $(median "${A_RATIOS[@]}") % ($(nproc) cores, $(date -u +%Y-%m-%d))"
