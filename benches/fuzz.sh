#!/usr/bin/env bash
# The property/fuzz targets of issue 14 (item 5) at length: the same tests the normal suite runs
# with 1,024 cases each (crates/tessera-server/tests/fuzz.rs: form, Basic, scopes,
# assertion claims, trust subjects; crates/tessera-verifier/tests/fuzz.rs: token decoder, JWKS),
# here in release mode with TESSERA_FUZZ_CASES set so that all targets together run at least
# TOTAL cases.
#
#   benches/fuzz.sh [TOTAL, default 10000000]
#
# Prints one line per target (cases, seconds) and the total; exits non-zero when a target fails
# or panics (proptest prints the shrunk input), or when a target printed no result.
set -euo pipefail
cd "$(dirname "$0")/.."
TOTAL="${1:-10000000}"
PACKAGES=(tessera-server tessera-verifier)

for p in "${PACKAGES[@]}"; do
    cargo test --release --quiet -p "$p" --test fuzz --no-run
done

# Every target gets the same number of cases: TOTAL over the number of targets, rounded up.
targets=0
for p in "${PACKAGES[@]}"; do
    n=$(cargo test --release --quiet -p "$p" --test fuzz -- --list 2>/dev/null | grep -c ': test$')
    targets=$((targets + n))
done
per_target=$(( (TOTAL + targets - 1) / targets ))
echo "$targets targets, $per_target cases each"

LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
status=0
start=$(date +%s.%N)
for p in "${PACKAGES[@]}"; do
    # Two test threads: one target per core.
    TESSERA_FUZZ_CASES=$per_target cargo test --release --quiet -p "$p" --test fuzz \
        -- --nocapture --test-threads=2 >>"$LOG" 2>&1 || status=1
done
wall=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')

# The tests print `fuzz NAME: N cases in S s`; libtest's own output may share a line with it.
results=$(grep -oE 'fuzz [a-z0-9_]+: [0-9]+ cases in [0-9.]+ s' "$LOG" | sort || true)
awk '{ sub(":", "", $2); printf "%-66s %10d cases %9.2f s\n", $2, $3, $6 }' <<<"$results"
found=$(grep -c . <<<"$results" || true)
awk -v wall="$wall" '{ cases += $3; secs += $6 }
    END { printf "total: %d cases in %d targets, %.2f s of target time, %.2f s wall\n",
          cases, NR, secs, wall }' <<<"$results"

if [ "$found" -ne "$targets" ]; then
    echo "only $found of $targets targets reported a result" >&2
    status=1
fi
if [ "$status" -ne 0 ]; then
    echo "FAILED:" >&2
    grep -E 'panicked|Test failed|minimal failing input' -A 12 "$LOG" >&2 || true
    exit 1
fi
echo "all targets passed"
