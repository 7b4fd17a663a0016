import type net from "node:net";

/**
 * ConnectionTracker knows every TCP connection the server host accepted, from the moment it is
 * accepted, whatever protocol it turns out to speak. A connection is *started* once it has shown
 * what it is: the HTTP/2 preface and SETTINGS arrived, or the head of a first HTTP/1.1 request.
 * Until then it carries no call, so
 * - it may take at most `handshakeTimeoutMs` to start (the TLS handshake included), else it is
 *   closed: a slow-loris guard, since neither Node's HTTP/2 server nor its TLS server with
 *   `allowHTTP1` bounds a connection that opens and then sends nothing, or half a preface;
 * - a drain closes it at once (`closeUnstarted`), and a forced shutdown reaches it like every
 *   other connection (`destroyAll`): `net.Server.close()` waits for all of them.
 *
 * Sockets are known by their remote address and port, which a TLS socket shares with the TCP
 * socket it wraps: the HTTP layers only ever see the TLS socket, and Node has no public link
 * from it to the TCP socket underneath.
 */
export interface ConnectionTracker {
  /** Tracks a newly accepted TCP connection and starts its handshake timer. */
  accept(socket: net.Socket): void;
  /** The connection behind `socket` (TCP or TLS) has started: its handshake timer stops. */
  started(socket: net.Socket): void;
  /** Closes every connection that has not started (a drain has begun: none carries a call). */
  closeUnstarted(): void;
  /** Destroys every connection still open (a drain ran out of time). */
  destroyAll(): void;
  /** How many accepted connections are still open. */
  readonly size: number;
}

interface TrackedConnection {
  socket: net.Socket;
  /** Pending while the connection has not started; cleared once it has. */
  handshakeTimer: NodeJS.Timeout | undefined;
}

/** Default `handshakeTimeoutMs`: generous for any real client on a LAN, short for an attacker. */
export const defaultHandshakeTimeoutMs = 10_000;

export function createConnectionTracker({ handshakeTimeoutMs = defaultHandshakeTimeoutMs }: { handshakeTimeoutMs?: number } = {}): ConnectionTracker {
  const connections = new Map<string, TrackedConnection>();
  const keyOf = (socket: net.Socket) => `${socket.remoteAddress}|${socket.remotePort}`;

  return {
    accept(socket) {
      // Reset before it was accepted: nothing to track, and no address to know it by.
      if (socket.remoteAddress === undefined) return void socket.destroy();
      const key = keyOf(socket);
      const tracked: TrackedConnection = {
        socket,
        handshakeTimer: setTimeout(() => socket.destroy(), handshakeTimeoutMs),
      };
      tracked.handshakeTimer!.unref();
      connections.set(key, tracked);
      socket.once("close", () => {
        clearTimeout(tracked.handshakeTimer);
        if (connections.get(key) === tracked) connections.delete(key);
      });
    },
    started(socket) {
      const tracked = connections.get(keyOf(socket));
      if (!tracked) return;
      clearTimeout(tracked.handshakeTimer);
      tracked.handshakeTimer = undefined;
    },
    closeUnstarted() {
      for (const { socket, handshakeTimer } of connections.values()) if (handshakeTimer) socket.destroy();
    },
    destroyAll() {
      for (const { socket } of connections.values()) socket.destroy();
    },
    get size() {
      return connections.size;
    },
  };
}
