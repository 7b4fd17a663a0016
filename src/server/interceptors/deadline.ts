import type { Interceptor } from "@connectrpc/connect";
import { parseTimeout } from "@connectrpc/connect/protocol-grpc";
import { runWithDeadline } from "../../common/deadline.js";
import { recordedCallDeadline } from "../call-deadline.js";
import { observeCalls, type CallObserver } from "./observe-calls.js";

/**
 * serverDeadline makes the caller's deadline (gRPC's `grpc-timeout`, Connect's
 * `connect-timeout-ms`) the inherited deadline of everything the handler does, so that the mesh
 * client sends on only what is left of it when this service calls another.
 */
export function serverDeadline(): Interceptor {
  // An observer, so that the host runs it in one layer with the observers next to it (fuseObservers).
  return observeCalls((request) => {
    // The lean gRPC path has parsed the header already; connect-node's calls are read here.
    const recorded = recordedCallDeadline(request.contextValues);
    if (recorded !== undefined) return recorded === null ? noDeadline : new CallWithDeadline(recorded);
    const timeoutMs = timeoutOf(request.header);
    return timeoutMs === undefined ? noDeadline : new CallWithDeadline(performance.now() + timeoutMs);
  });
}

const noDeadline: CallObserver = {};

/** A call with a deadline: the rest of the chain, and everything the handler starts, inherits it. */
class CallWithDeadline implements CallObserver {
  constructor(private readonly deadline: number) {}

  run<T>(next: () => T): T {
    return runWithDeadline(this.deadline, next);
  }
}

function timeoutOf(header: Headers): number | undefined {
  const grpc = header.get("grpc-timeout");
  if (grpc !== null) {
    const parsed = parseTimeout(grpc, Number.MAX_SAFE_INTEGER);
    return parsed.timeoutMs;
  }
  const connect = header.get("connect-timeout-ms");
  if (connect !== null && /^\d{1,10}$/.test(connect)) return Number(connect);
  return undefined;
}
