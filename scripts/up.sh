#!/usr/bin/env bash
# The main job: the infrastructure (scripts/infra-up.sh), the config entries of
# deploy/consul/config-entries (service defaults, intentions, resolver) written into Consul, a
# local stand-in for the third-party user API, two instances each of user-sync, orders and status
# (native members of Consul's service mesh: mutual TLS with leaves from Consul's CA, every call
# decided by the intentions; registered with gRPC checks), a small traffic generator calling as
# the mesh identity "traffic", a `consul connect proxy` for the identity "developer" whose
# local upstream ports let grpcurl call the mesh in plain text, a Prometheus scraping every
# instance Consul lists (deploy/prometheus, every second) and the dashboard: a page in the
# browser that draws all of it live, from Consul, Prometheus and Jaeger (a browser-facing edge on
# loopback, outside the mesh's mutual TLS). Everything on 127.0.0.1; logs and pids in .run/.
# `make down` stops it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$MESHKIT_ROOT"
mkdir -p "$RUN_DIR"
export USER_SOURCE_PORT="${USER_SOURCE_PORT:-18080}"
# Where the developer proxy listens for each service (plain gRPC in, mutual TLS out as "developer").
export DEV_ORDERS_PORT="${DEV_ORDERS_PORT:-17001}" DEV_USERS_PORT="${DEV_USERS_PORT:-17002}" DEV_STATUS_PORT="${DEV_STATUS_PORT:-17003}"
export MESH_IDENTITY=true

# run NAME ENTRY [VAR=VALUE...]: starts `node --import tsx ENTRY` in the background unless running.
run() {
  local name=$1 entry=$2
  shift 2
  if [[ -f "$RUN_DIR/$name.pid" ]] && kill -0 "$(cat "$RUN_DIR/$name.pid")" 2>/dev/null; then
    log "$name: already running"
    return
  fi
  env "$@" nohup node --import tsx "$entry" >"$RUN_DIR/$name.log" 2>&1 &
  echo $! >"$RUN_DIR/$name.pid"
}

registered() { grep -q '"serving and registered in Consul"' "$RUN_DIR/$1.log"; }
port_of() { grep -o '"address":"[^"]*"' "$RUN_DIR/$1.log" | tail -1 | sed 's/.*:\([0-9]*\)"$/\1/'; }

for entry in deploy/consul/config-entries/*.hcl; do consul config write "$entry" >/dev/null; done
# The dashboard's page (esbuild, about a second): built every time, so it matches the sources.
npm run build:dashboard --silent
# Prometheus: the shipped configuration with this agent's address, scraping every second so the
# dashboard is at most about two seconds behind (deploy/prometheus/prometheus.yml scrapes every 5 s).
if ! port_open "$PROMETHEUS_PORT"; then
  sed -e "s/server: 127.0.0.1:8500/server: 127.0.0.1:$CONSUL_HTTP_PORT/" -e "s/scrape_interval: 5s/scrape_interval: 1s/" -e "s/refresh_interval: 5s/refresh_interval: 1s/" \
    deploy/prometheus/prometheus.yml >"$RUN_DIR/prometheus.yml"
  cp deploy/prometheus/alerts.yml "$RUN_DIR/alerts.yml"
  nohup prometheus --config.file="$RUN_DIR/prometheus.yml" --storage.tsdb.path="$RUN_DIR/prometheus-data" \
    --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" >"$RUN_DIR/prometheus.log" 2>&1 &
  echo $! >"$RUN_DIR/prometheus.pid"
else
  log "prometheus: something already answers on 127.0.0.1:$PROMETHEUS_PORT, using it"
fi
make --no-print-directory migrate >/dev/null
run user-source src/reference/dev/user-source.ts USER_SOURCE_COUNT="${USER_SOURCE_COUNT:-1000}"
for n in 1 2; do
  run "user-sync-$n" src/reference/services/users/main.ts INSTANCE_ID="user-sync-$n" USER_SOURCE_URL="http://127.0.0.1:$USER_SOURCE_PORT/users" SYNC_INTERVAL_MS=60000
  run "orders-$n" src/reference/services/orders/main.ts INSTANCE_ID="orders-$n"
  run "status-$n" src/reference/services/status/main.ts INSTANCE_ID="status-$n"
done
for name in user-sync-1 user-sync-2 orders-1 orders-2 status-1 status-2; do
  wait_for 60 "$name to register" registered "$name"
done
# Consul runs the first gRPC checks within one interval: wait until every service has a passing
# instance, so that the traffic generator's first calls find them.
passing() { [[ "$(curl -fsS "http://127.0.0.1:$CONSUL_HTTP_PORT/v1/health/service/$1?passing=true")" == *'"ServiceID"'* ]]; }
for service in user-sync orders status; do
  wait_for 30 "$service to pass its Consul check" passing "$service"
done
if ! { [[ -f "$RUN_DIR/developer-proxy.pid" ]] && kill -0 "$(cat "$RUN_DIR/developer-proxy.pid")" 2>/dev/null; }; then
  nohup consul connect proxy -service developer -upstream "orders:$DEV_ORDERS_PORT" -upstream "user-sync:$DEV_USERS_PORT" \
    -upstream "status:$DEV_STATUS_PORT" >"$RUN_DIR/developer-proxy.log" 2>&1 &
  echo $! >"$RUN_DIR/developer-proxy.pid"
fi
for port in "$DEV_ORDERS_PORT" "$DEV_USERS_PORT" "$DEV_STATUS_PORT"; do wait_for 30 "the developer proxy on $port" port_open "$port"; done
# A first sync now rather than in a minute, so the status shows users at once.
grpcurl -plaintext -max-time 60 "127.0.0.1:$DEV_USERS_PORT" meshkit.users.v1.UserSyncService/SyncUsers >/dev/null || log "first sync failed (see .run/user-sync-1.log)"
run traffic src/reference/dev/traffic.ts INSTANCE_ID=traffic-1
# Outside the mesh (MESH_IDENTITY=false): browsers have no mesh certificate. It calls no meshed
# service; it reads Consul, Prometheus and Jaeger.
run dashboard src/reference/services/dashboard/main.ts INSTANCE_ID=dashboard-1 MESH_IDENTITY=false PORT="$DASHBOARD_PORT"
wait_for 60 "the dashboard to register" registered dashboard
wait_for 30 "Prometheus" curl -fsS "$PROMETHEUS_URL/-/ready"

orders=$(port_of orders-1) users=$(port_of user-sync-1) status=$(port_of status-1)
cat <<MSG

  The mesh is up (logs in .run/, stop with: make down)
    Dashboard      http://127.0.0.1:$DASHBOARD_PORT/   (the mesh live: services, calls, clients' views, traces, intentions)
    Prometheus     $PROMETHEUS_URL/   (scrapes every instance Consul lists, every second)
    Consul UI      http://127.0.0.1:$CONSUL_HTTP_PORT/ui/dc1/services
    Jaeger API     http://127.0.0.1:$JAEGER_UI_PORT/api/traces?service=status   (services: /api/services)
    user-sync      127.0.0.1:$users $(port_of user-sync-2)   (mutual TLS: mesh identities only)
    orders         127.0.0.1:$orders $(port_of orders-2)
    status         127.0.0.1:$status $(port_of status-2)
    traffic        a few calls a second through the mesh client, as "traffic" (.run/traffic.log)
    developer      plain gRPC in, the mesh as "developer" out: orders 127.0.0.1:$DEV_ORDERS_PORT, user-sync :$DEV_USERS_PORT, status :$DEV_STATUS_PORT

  Try (after: source scripts/lib.sh):
    grpcurl -plaintext 127.0.0.1:$DEV_ORDERS_PORT list
    grpcurl -plaintext 127.0.0.1:$DEV_ORDERS_PORT describe meshkit.orders.v1.OrderService
    grpcurl -plaintext -d '{"idempotencyKey":"my-first-order","userId":"u1","product":"book","quantity":1,"amountCents":"1500"}' 127.0.0.1:$DEV_ORDERS_PORT meshkit.orders.v1.OrderService/CreateOrder
    grpcurl -plaintext -d '{"thirdPartyId":"u0000001"}' 127.0.0.1:$DEV_USERS_PORT meshkit.users.v1.UserSyncService/GetUser
    grpcurl -plaintext 127.0.0.1:$DEV_STATUS_PORT meshkit.status.v1.StatusService/GetSystemStatus
    grpcurl -plaintext 127.0.0.1:$DEV_STATUS_PORT meshkit.status.v1.StatusService/WatchSystemStatus
  Intentions decide, within a second of a change (the Consul UI's Intentions page does the same):
    curl -X PUT -d '{"Action":"deny"}' 'http://127.0.0.1:$CONSUL_HTTP_PORT/v1/connect/intentions/exact?source=developer&destination=orders'
    grpcurl -plaintext 127.0.0.1:$DEV_ORDERS_PORT list     # PermissionDenied
    curl -X PUT -d '{"Action":"allow"}' 'http://127.0.0.1:$CONSUL_HTTP_PORT/v1/connect/intentions/exact?source=developer&destination=orders'
  Without a mesh certificate only grpc.health.v1 answers:
    grpcurl -insecure 127.0.0.1:$orders list           # Unauthenticated
MSG
