#!/usr/bin/env bash
# The package as a consumer gets it: packs meshkit (prepack builds dist/), installs the tarball
# with npm into a fresh temporary project (a copy of examples/), and there, under every Node line
# that `engines` names (24 and 22):
#   - imports each entry in plain Node (no tsx) and checks that the process exits by itself;
#   - runs the example service (server host, registered in the running Consul under a unique
#     name) and calls it through createMeshTransport and through a grpc-js client on consul:///;
# then compiles a strict TypeScript consumer (nodenext, strict, skipLibCheck false) against the
# installed types. Needs the Consul of `make infra-up` (CONSUL_HTTP_ADDR). Prints one line per
# check and exits non-zero on the first failure.
set -euo pipefail
started=$SECONDS
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$MESHKIT_ROOT"

work=$(mktemp -d "${TMPDIR:-/tmp}/meshkit-package.XXXXXX")
server_pid=
cleanup() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then kill -TERM "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT


app="$work/app"
mkdir -p "$app"
cp -r examples/package.json examples/*.js examples/gen examples/typescript "$app/"
npm pack --silent --pack-destination "$app" >/dev/null
mv "$app"/meshkit-*.tgz "$app/meshkit.tgz"
log "packed: $(tar -tzf "$app/meshkit.tgz" | wc -l) files, $(du -k "$app/meshkit.tgz" | cut -f1) KiB"
if tar -tzf "$app/meshkit.tgz" | grep -E '^package/(test|bench|scripts|src/reference|\.tools|examples|node_modules)/'; then
  log "FAILED: the tarball carries files a consumer does not need (above)"
  exit 1
fi
(cd "$app" && npm install --prefer-offline --no-audit --no-fund --loglevel=error >/dev/null)
log "installed the tarball into a fresh project ($((SECONDS - started)) s)"

# run_with NODE LABEL: the runtime checks under one Node binary.
run_with() {
  local node=$1 label=$2 entry service out
  for entry in client server platform grpc-js; do
    # Imports the entry, then lists what would keep the process alive (timers, sockets, servers);
    # the process must also end by itself.
    if ! (cd "$app" && timeout 20 "$node" --input-type=module -e "
      process.stdout; process.stderr; // opened first: stdio is not the import's doing
      const before = process.getActiveResourcesInfo();
      await import('meshkit/$entry');
      setImmediate(() => {
        const running = process.getActiveResourcesInfo().filter((type) => type !== 'Immediate');
        for (const type of before) if (running.includes(type)) running.splice(running.indexOf(type), 1);
        if (running.length) { console.error('still running after the import:', running.join(', ')); process.exitCode = 1; }
      });"); then
      log "FAILED ($label): importing meshkit/$entry failed or did not let the process exit"
      return 1
    fi
  done
  log "$label: every entry imports in plain Node and leaves nothing running"

  service="greeter-package-check-$(date +%s)-$RANDOM"
  (cd "$app" && SERVICE_NAME="$service" LOG_LEVEL=info exec "$node" server.js >"$work/server.log" 2>&1) &
  server_pid=$!
  if ! wait_for 30 "the example service to register in Consul" grep -q "serving and registered in Consul" "$work/server.log"; then
    cat "$work/server.log" >&2
    return 1
  fi
  # Consul lists the instance once its first gRPC check passed; the clients fail fast until then.
  if ! wait_for 15 "the example service to pass its check" bash -c \
    "curl -fsS 'http://$CONSUL_HTTP_ADDR/v1/health/service/$service?passing=true' | grep -q '\"ServiceID\"'"; then
    cat "$work/server.log" >&2
    return 1
  fi
  for client in mesh-client.js grpc-js-client.js; do
    if ! out=$(cd "$app" && GREETER_SERVICE="$service" timeout 30 "$node" "$client" 2>&1); then
      log "FAILED ($label): $client"
      printf '%s\n' "$out" >&2
      return 1
    fi
    log "$label: $out"
  done
  kill -TERM "$server_pid"
  if ! wait "$server_pid"; then
    log "FAILED ($label): the example service did not stop cleanly on SIGTERM"
    cat "$work/server.log" >&2
    return 1
  fi
  server_pid=
}

if [[ ! -x "$NODE22_BIN" ]]; then
  log "FAILED: Node $NODE22_VERSION is not installed at $NODE22_BIN (run make setup)"
  exit 1
fi
run_with "$(command -v node)" "node $(node --version)"
run_with "$NODE22_BIN" "node $("$NODE22_BIN" --version)"

(cd "$app" && node node_modules/typescript/bin/tsc -p typescript)
log "a strict TypeScript consumer (nodenext, skipLibCheck false) compiles against the types"
log "package check passed in $((SECONDS - started)) s"
