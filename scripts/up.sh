#!/usr/bin/env bash
# The main job, for now: the infrastructure (scripts/infra-up.sh) and two instances of the
# sample echo service, each registered in Consul with a gRPC health check. `make down` stops it all.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$MESHKIT_ROOT"
mkdir -p "$RUN_DIR"

ports=()
for n in 1 2; do
  name="echo-$n"
  if [[ -f "$RUN_DIR/$name.pid" ]] && kill -0 "$(cat "$RUN_DIR/$name.pid")" 2>/dev/null; then
    log "$name: already running"
  else
    INSTANCE_ID="echo-local-$n" nohup node --import tsx src/services/echo/main.ts >"$RUN_DIR/$name.log" 2>&1 &
    echo $! >"$RUN_DIR/$name.pid"
  fi
done
for n in 1 2; do
  wait_for 30 "echo-$n to register" grep -q '"serving and registered in Consul"' "$RUN_DIR/echo-$n.log"
  ports+=("$(grep -o '"address":"[^"]*"' "$RUN_DIR/echo-$n.log" | tail -1 | sed 's/.*:\([0-9]*\)"$/\1/')")
done

cat <<MSG

  The mesh is up (logs in .run/):
    Consul UI       http://127.0.0.1:$CONSUL_HTTP_PORT/ui/dc1/services/echo
    Jaeger UI       http://127.0.0.1:$JAEGER_UI_PORT/search?service=echo
    echo instances  127.0.0.1:${ports[0]}  127.0.0.1:${ports[1]}

  Try:
    source scripts/lib.sh
    grpcurl -plaintext 127.0.0.1:${ports[0]} list
    grpcurl -plaintext 127.0.0.1:${ports[0]} describe meshkit.echo.v1.EchoService
    grpcurl -plaintext -d '{"message":"hi"}' 127.0.0.1:${ports[0]} meshkit.echo.v1.EchoService/Echo
    curl -s -H 'Content-Type: application/json' -d '{"message":"hi"}' http://127.0.0.1:${ports[0]}/meshkit.echo.v1.EchoService/Echo

  Stop everything with: make down
MSG
