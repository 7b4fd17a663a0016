/**
 * The `code` of a cause that marks a call ended by an HTTP/2 stream reset (RST_STREAM CANCEL)
 * rather than by a status the server sent. For the caller it is an instance that went away
 * (killed, restarted, its connection dropped): the retry policy's `attemptError` reports it as
 * UNAVAILABLE, while a CANCELED status the server sent in its trailers stays CANCELED.
 */
export const streamResetCode = "MESHKIT_STREAM_RESET";

/** StreamResetError is the cause a transport attaches to a failure that was a stream reset. */
export class StreamResetError extends Error {
  readonly code = streamResetCode;
  constructor(message: string) {
    super(message);
    this.name = "StreamResetError";
  }
}
