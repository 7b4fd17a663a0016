#!/usr/bin/env bash
# Stops what scripts/infra-up.sh (and scripts/up.sh) started, and nothing else: every process
# recorded in .run/*.pid. SIGTERM first, SIGKILL after 10 s.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
shopt -s nullglob
pids=()
for file in "$RUN_DIR"/*.pid; do
  pid=$(cat "$file")
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping $(basename "$file" .pid) (pid $pid)"
    kill -TERM "$pid" 2>/dev/null
    pids+=("$pid")
  fi
  rm -f "$file"
done
for _ in $(seq 50); do
  alive=0
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
  ((alive)) || exit 0
  sleep 0.2
done
for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null; done
exit 0
