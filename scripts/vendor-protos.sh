#!/usr/bin/env bash
# Puts third-party .proto files that no npm package ships where buf finds them (.tools/proto):
# protovalidate's buf/validate/validate.proto, from its Go module through the Go module proxy
# (the Buf Schema Registry is not reachable from our machines). Idempotent.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
target="$TOOLS_DIR/proto/buf/validate/validate.proto"
[[ -f "$target" ]] && exit 0
dir=$(cd "$MESHKIT_ROOT/tools/protovalidate" && GOFLAGS=-mod=mod go mod download -json "github.com/bufbuild/protovalidate@$PROTOVALIDATE_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
mkdir -p "$(dirname "$target")"
cp "$dir/proto/protovalidate/buf/validate/validate.proto" "$target"
chmod 644 "$target"
log "vendored buf/validate/validate.proto from protovalidate $PROTOVALIDATE_VERSION"
