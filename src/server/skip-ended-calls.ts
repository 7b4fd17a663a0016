import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";

/**
 * skipEndedCalls, the innermost interceptor of the calls connect-node serves, does not start a
 * handler whose call is already over: connect-node calls the handler once the request has
 * arrived, even when the call's signal was aborted meanwhile (its deadline passed while the body
 * was still arriving, the client went away). The call fails with the signal's reason instead
 * (DEADLINE_EXCEEDED, CANCELED), as gRPC servers answer a call whose deadline has passed. The
 * lean gRPC path checks the same before it runs the chain.
 */
export const skipEndedCalls: Interceptor = (next) => (request) =>
  request.signal.aborted ? Promise.reject(ConnectError.from(request.signal.reason, Code.Canceled)) : next(request);
