# Shared by the bench scripts, sourced from the repository root. Sourcing it makes WORK (a
# scratch directory) and PIDS (processes to stop), both cleaned up at exit, and defines
# start_server: start a server whose first stdout line says where it listens.

WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

# start_server NAME CMD… → sets ADDR and PID
start_server() {
    local name=$1; shift
    "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    PID=$!
    PIDS+=("$PID")
    for _ in $(seq 1 1200); do
        ADDR=$(grep -oE 'listening on https?://[0-9.:]+' "$WORK/$name.out" | head -n1 | sed -E 's#listening on https?://##' || true)
        [ -n "$ADDR" ] && return 0
        sleep 0.05
    done
    echo "$name did not start" >&2; cat "$WORK/$name.err" >&2; exit 1
}
