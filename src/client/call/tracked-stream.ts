import { Code, ConnectError } from "@connectrpc/connect";
import { classify } from "./outcome-classifier.js";
import { settleAttempt } from "./attempt.js";
import type { CallEnvironment, LogicalCall } from "./call.js";
import type { Won } from "./retrying-call.js";

/**
 * OpenStreams are the streams of one transport whose bookkeeping is not done yet, so that
 * `close()` can end them (and their attempts' outstanding counts) at once instead of waiting a
 * grace period for readers that may never come.
 */
export type OpenStreams = Set<(why: ConnectError) => void>;

/**
 * trackStream wraps an open stream's messages so that its bookkeeping (outstanding count,
 * latency sample, attempt and call metrics, the call's span) ends exactly once, at whichever
 * comes first: read to the end, failed, the reader stopped (`return()`), the caller's signal
 * aborted, or the transport closed. Without the last two a stream nobody reads would count as in
 * flight forever: the balancer would avoid its instance and `close()` would wait for it.
 */
export function trackStream<T>(
  env: CallEnvironment,
  call: LogicalCall<unknown>,
  won: Won<unknown>,
  messages: AsyncIterable<T>,
  open: OpenStreams,
  onEnd: (code: Code | 0, error: ConnectError | undefined) => void,
): AsyncIterable<T> {
  const attempt = won.attempt;
  let ended = false;
  const end = (error: ConnectError | undefined) => {
    if (ended) return;
    ended = true;
    open.delete(release);
    call.signal?.removeEventListener("abort", onAbort);
    const cancelled = error?.code === Code.Canceled && (call.signal?.aborted === true || attempt.controller?.signal.aborted === true);
    const outcome = classify({ method: call.method, error, cancelled, deadlineWasCallers: call.deadlineOnWire }, call.classifiers);
    // Health already heard the open; the end adds the load sample and the metrics.
    settleAttempt(env, call, attempt, outcome, error, false);
    onEnd(error?.code ?? 0, error);
  };
  const release = (why: ConnectError) => {
    attempt.controller?.abort(why);
    end(why);
  };
  const onAbort = () => end(new ConnectError("stream cancelled by the caller", Code.Canceled));
  open.add(release);
  call.signal?.addEventListener("abort", onAbort, { once: true });

  return (async function* () {
    let failure: ConnectError | undefined;
    try {
      yield* messages;
    } catch (caught) {
      failure = ConnectError.from(caught);
      throw failure;
    } finally {
      end(failure);
    }
  })();
}
