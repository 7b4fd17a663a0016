/**
 * The `code` of a cause that proves an attempt never left this process: the transport had no
 * connection to put it on. The retry policy (`neverSent` in retry-policy.ts) looks for it among
 * an error's causes, next to Node's own codes for a refused connection, so a non-idempotent call
 * may go to another instance at once.
 */
export const neverSentCode = "MESHKIT_NEVER_SENT";

/** NeverSentError is the cause a transport attaches to a failure that proves the above. */
export class NeverSentError extends Error {
  readonly code = neverSentCode;
  constructor(message: string) {
    super(message);
    this.name = "NeverSentError";
  }
}
