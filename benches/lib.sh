# Shared by the bench scripts: start a server whose first stdout line says where it listens.
# Callers set WORK (a scratch directory) and PIDS (an array of processes to stop at exit).

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
