#!/usr/bin/env bash
# Starts the local infrastructure the services and tests need, on 127.0.0.1, idempotently:
# what already answers on its port is left alone; what this script starts is recorded in .run/
# so that infra-down stops only that. Logs: .run/<name>.log.
#   Consul agent -dev   HTTP API + UI  $CONSUL_HTTP_PORT (8500)
#   Jaeger v2           OTLP gRPC $JAEGER_OTLP_GRPC_PORT (4317), OTLP HTTP $JAEGER_OTLP_HTTP_PORT (4318),
#                       UI + query API $JAEGER_UI_PORT (16686)
#   PostgreSQL, Redis   checked at $PGPORT (5432) and $REDIS_PORT (6379); Redis is started privately
#                       when it is missing and redis-server exists
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
mkdir -p "$RUN_DIR"

# start NAME PORT COMMAND...: starts COMMAND in the background unless PORT already answers.
start() {
  local name=$1 port=$2
  shift 2
  if port_open "$port"; then
    log "$name: something already answers on 127.0.0.1:$port, leaving it alone"
    return
  fi
  log "$name: starting (log: .run/$name.log)"
  nohup "$@" >"$RUN_DIR/$name.log" 2>&1 &
  echo $! >"$RUN_DIR/$name.pid"
}

consul_ready() { [[ "$(curl -fsS "http://127.0.0.1:$CONSUL_HTTP_PORT/v1/status/leader")" == *:* ]]; }
jaeger_ready() { curl -fsS "http://127.0.0.1:$JAEGER_UI_PORT/api/services" && curl -fsS "http://127.0.0.1:$JAEGER_HEALTH_PORT/status"; }
postgres_ready() { pg_isready -q -h "$PGHOST" -p "$PGPORT"; }
redis_ready() { [[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]; }

start consul "$CONSUL_HTTP_PORT" consul agent -dev -ui \
  -bind 127.0.0.1 -client 127.0.0.1 -node meshkit-dev \
  -http-port "$CONSUL_HTTP_PORT" -grpc-port "$CONSUL_GRPC_PORT" -grpc-tls-port "$CONSUL_GRPC_TLS_PORT" -dns-port -1 \
  -serf-lan-port "$CONSUL_SERF_LAN_PORT" -serf-wan-port "$CONSUL_SERF_WAN_PORT" -server-port "$CONSUL_SERVER_PORT" \
  -log-level warn
start jaeger "$JAEGER_UI_PORT" jaeger --config "$MESHKIT_ROOT/deploy/jaeger/config.yaml"

if ! redis_ready; then
  if command -v redis-server >/dev/null; then
    log "redis: not answering on $REDIS_PORT, starting a private one (nothing kept on disk)"
    nohup redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
      --dir "$RUN_DIR" >"$RUN_DIR/redis.log" 2>&1 &
    echo $! >"$RUN_DIR/redis.pid"
  else
    log "redis: nothing answers on 127.0.0.1:$REDIS_PORT and redis-server is not installed (apt-get install redis-server)"
    exit 1
  fi
fi
if ! postgres_ready; then
  log "postgresql: nothing answers on $PGHOST:$PGPORT. Start it (Debian: pg_ctlcluster 15 main start) or set PGHOST/PGPORT; trust auth and a database '$PGDATABASE' are expected"
  exit 1
fi

wait_for 60 "Consul to elect itself leader" consul_ready
wait_for 60 "Jaeger's query API" jaeger_ready
wait_for 10 "Redis" redis_ready
log "ready: Consul UI http://127.0.0.1:$CONSUL_HTTP_PORT/ui  Jaeger UI http://127.0.0.1:$JAEGER_UI_PORT  PostgreSQL $PGHOST:$PGPORT  Redis 127.0.0.1:$REDIS_PORT"
