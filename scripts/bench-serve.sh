# Sourced by the benchmarks: background servers on loopback ports, stopped on exit.
#
#   serve NAME COMMAND...   runs a server (stdout $WORK/NAME.out, logs $WORK/NAME.log) until it
#                           logs "model ready: SERVING"; sets SERVED_ADDR and SERVED_PID
#   wait_line FILE PATTERN  waits up to RD_WAIT_SECONDS (60) for PATTERN in FILE
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
wait_line() { # file pattern
  for _ in $(seq $((${RD_WAIT_SECONDS:-60} * 10))); do grep -qs "$2" "$1" && return 0; sleep 0.1; done
  echo "timed out waiting for '$2' in $1" >&2; return 1
}

# serve NAME COMMAND...: runs a server in the background (stdout $WORK/NAME.out, logs
# $WORK/NAME.log) until it logs "model ready: SERVING"; sets SERVED_ADDR and SERVED_PID.
serve() {
  local name=$1; shift
  # Remove old logs first: the redirections truncate them only once the child runs.
  rm -f "$WORK/$name.out" "$WORK/$name.log"
  "$@" > "$WORK/$name.out" 2> "$WORK/$name.log" &
  SERVED_PID=$!; PIDS+=("$SERVED_PID")
  wait_line "$WORK/$name.log" "model ready: SERVING"
  SERVED_ADDR=$(awk '/listening on/ {print $3; exit}' "$WORK/$name.out")
}
