#!/usr/bin/env bash
# Puts third-party .proto files that no npm package ships where buf finds them (.tools/proto),
# from their Go modules through the Go module proxy (the Buf Schema Registry is not reachable
# from our machines). Idempotent: a set already in place at its pinned version is left alone.
#   - protovalidate's buf/validate/validate.proto (imported by our protos, not generated here)
#   - the Connect conformance suite's connectrpc/conformance/v1/*.proto (generated into gen/ for
#     the programs under test in test/conformance/)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# vendor WRAPPER MODULE VERSION FILES TO: copies FILES (a glob inside Go module MODULE@VERSION,
# downloaded from within the wrapper module tools/WRAPPER that pins it) into .tools/proto/TO.
vendor() {
  local wrapper=$1 module=$2 version=$3 from=$4 to=$5
  local target="$TOOLS_DIR/proto/$to" stamp="$TOOLS_DIR/proto/$to/.version"
  [[ -f "$stamp" && "$(cat "$stamp")" == "$module@$version" ]] && return 0
  local dir
  dir=$(cd "$MESHKIT_ROOT/tools/$wrapper" && GOFLAGS=-mod=mod go mod download -json "$module@$version" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  mkdir -p "$target"
  # shellcheck disable=SC2086 # $from is a glob, expanded on purpose
  cp "$dir"/$from "$target/"
  chmod 644 "$target"/*.proto
  echo "$module@$version" >"$stamp"
  log "vendored $to/*.proto from $module $version"
}

vendor protovalidate github.com/bufbuild/protovalidate "$PROTOVALIDATE_VERSION" proto/protovalidate/buf/validate/validate.proto buf/validate
vendor conformance connectrpc.com/conformance "$CONFORMANCE_VERSION" "proto/connectrpc/conformance/v1/*.proto" connectrpc/conformance/v1
