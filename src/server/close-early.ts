import http2 from "node:http2";

/**
 * closeEarly ends the receiving half of a stream the server has answered while the client may
 * still be sending: RST_STREAM with NO_ERROR once the answer is out, which tells the client to
 * stop sending without failing its call (RFC 9113, section 8.1; connect-node 2.3 does the same
 * after its responses, node-universal-handler.ts). Reading the rest of an unwanted body instead
 * keeps the stream open for as long as the client keeps writing.
 */
export function closeEarly(stream: http2.ServerHttp2Stream): void {
  // After the frames already queued for this stream (a setImmediate from the 'wantTrailers'
  // listener runs after Node has handed the trailers on).
  setImmediate(() => {
    if (!stream.destroyed && stream.state.remoteClose === 0) stream.close(http2.constants.NGHTTP2_NO_ERROR);
  });
}
