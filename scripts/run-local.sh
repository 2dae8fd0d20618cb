#!/usr/bin/env bash
# `make run`: a relay and an agent on this machine; Ctrl-C stops both.
set -euo pipefail
BIN="$1"; GRPC="$2"; METRICS="$3"; RUN_DIR="$4"
mkdir -p "$RUN_DIR"

cleanup() {
  trap - INT TERM EXIT
  [ -n "${AGENT_PID:-}" ] && kill -TERM "$AGENT_PID" 2>/dev/null || true
  [ -n "${AGENT_PID:-}" ] && wait "$AGENT_PID" 2>/dev/null || true
  [ -n "${RELAY_PID:-}" ] && kill -TERM "$RELAY_PID" 2>/dev/null || true
  [ -n "${RELAY_PID:-}" ] && wait "$RELAY_PID" 2>/dev/null || true
  echo "stopped; logs in $RUN_DIR/"
}
trap cleanup INT TERM EXIT

"$BIN/kubensage-relay" serve --listen-address "$GRPC" --metrics-address "$METRICS" \
  --log-file "$RUN_DIR/relay.log" &
RELAY_PID=$!
for _ in $(seq 1 50); do
  "$BIN/python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' \
    "http://$METRICS/healthz" >/dev/null 2>&1 && break
  kill -0 "$RELAY_PID" 2>/dev/null || { echo "relay failed to start"; exit 1; }
  sleep 0.2
done

SOCKET_ARGS=()
if [ -n "${CRI_SOCKET:-}" ]; then SOCKET_ARGS=(--cri-socket "$CRI_SOCKET"); fi
"$BIN/kubensage-agent" run --relay-address "$GRPC" --interval "${INTERVAL:-5}" \
  --state-dir "$RUN_DIR/state" --spool \
  --log-file "$RUN_DIR/agent.log" "${SOCKET_ARGS[@]}" &
AGENT_PID=$!

echo
echo "kubensage is running: metrics at http://$METRICS/metrics  (Ctrl-C stops relay and agent)"
echo
wait "$AGENT_PID"
