#!/usr/bin/env bash
# Runs the Connect conformance suite (connectconformance, built by scripts/setup.sh) against the
# meshkit server host (server mode) and the mesh client (client mode), each with its config and
# its known-failing list. Needs no infrastructure: the runner starts the programs under test and
# its own reference clients and servers, all on 127.0.0.1.
#   test/conformance/run.sh            both modes
#   test/conformance/run.sh server     one mode; extra arguments go to connectconformance
#                                      (e.g. --run 'Basic/**' -v)
# Ends with "conformance: server passed|failed, client passed|failed" and exits non-zero when a
# mode failed: a failure not in the known-failing list, or a listed failure that now passes.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
cd "$MESHKIT_ROOT"
here=test/conformance
modes=(server client)
if [[ $# -gt 0 && ( $1 == server || $1 == client ) ]]; then
  modes=("$1")
  shift
fi
# The runner's parallelism (RPCs in flight in server mode, server processes in client mode);
# defaults sized for 2 cores shared with other work.
parallel=${CONFORMANCE_PARALLEL:-8}
max_servers=${CONFORMANCE_MAX_SERVERS:-2}
export CONFORMANCE_CLIENT_PARALLEL=${CONFORMANCE_CLIENT_PARALLEL:-16}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The known-failing files hold "pattern  # reason" lines; the runner takes bare patterns.
patterns() { sed -E 's/[[:space:]]+#.*$//; /^[[:space:]]*(#|$)/d' "$1" >"$2"; }

summary=()
status=0
for mode in "${modes[@]}"; do
  patterns "$here/$mode-known-failing.txt" "$tmp/$mode-known-failing.txt"
  # Known flaky: cases that fail only some of the time (a race in our code, listed with its
  # reason); the runner lets them pass or fail.
  flaky=()
  if [[ -f "$here/$mode-known-flaky.txt" ]]; then
    patterns "$here/$mode-known-flaky.txt" "$tmp/$mode-known-flaky.txt"
    flaky=(--known-flaky "@$tmp/$mode-known-flaky.txt")
  fi
  started=$SECONDS
  echo "::: conformance, $mode mode ($(wc -l <"$tmp/$mode-known-failing.txt") known-failing patterns)"
  # --parallel is for server mode (the runner's RPCs in flight); in client mode the client under
  # test sets its own (CONFORMANCE_CLIENT_PARALLEL) and --max-servers bounds reference servers.
  if [[ $mode == server ]]; then sizing=(--parallel "$parallel" --max-servers "$max_servers"); else sizing=(--max-servers "$max_servers"); fi
  if connectconformance --mode "$mode" --conf "$here/$mode-config.yaml" \
    --known-failing "@$tmp/$mode-known-failing.txt" "${flaky[@]}" "${sizing[@]}" "$@" \
    -- node --import tsx "$here/$mode-under-test.ts"; then
    summary+=("$mode passed in $((SECONDS - started)) s")
  else
    summary+=("$mode FAILED in $((SECONDS - started)) s")
    status=1
  fi
done
echo "conformance: $(printf "%s; " "${summary[@]}" | sed "s/; $//")"
exit $status
