import { isIP } from "node:net";
import type http2 from "node:http2";
import { connect, type ConnectionOptions } from "node:tls";
import type { Socket } from "node:net";
import { CallCredentials, ChannelCredentials, type experimental } from "@grpc/grpc-js";

/**
 * LiveTlsCredentials are grpc-js channel credentials that read the client's TLS material (CA,
 * certificate, key, server name) afresh for every new connection, from an object the mesh
 * transport updates in place when the files change: rotated certificates apply to the next
 * connection, as with the connect-node session this replaces.
 *
 * Written here because grpc-js offers no such credentials: `createSsl` and
 * `createFromSecureContext` fix the material at creation, and its certificate-provider
 * credentials need their own file watcher, while the mesh transport already watches the files
 * (`watchTlsFiles`) for every endpoint at once. This subclasses grpc-js's `ChannelCredentials`
 * through its `_createSecureConnector` hook (public in its typings, used by its own credential
 * kinds since 1.13); the handshake mirrors grpc-js's own secure connector (ALPN h2, reject an
 * unauthorized peer).
 */
export class LiveTlsCredentials extends ChannelCredentials {
  constructor(
    /** Read at each connection: `ca`, `cert`, `key`, and `servername` (default: the host). */
    protected readonly material: http2.SecureClientSessionOptions,
    /** The instance's host, for SNI and the hostname check; undefined for neither (mesh: SPIFFE IDs, IP addresses). */
    private readonly host: string | undefined,
    protected readonly callCredentials = CallCredentials.createEmpty(),
  ) {
    super();
  }

  override compose(callCredentials: CallCredentials): ChannelCredentials {
    return new LiveTlsCredentials(this.material, this.host, this.callCredentials.compose(callCredentials));
  }

  _isSecure(): boolean {
    return true;
  }

  _equals(other: ChannelCredentials): boolean {
    return other === this;
  }

  /**
   * How the server's certificate is checked on a connection over `socket`: the material's
   * `checkServerIdentity` when given (the mesh's SPIFFE check, mesh-tls.ts), else Node's
   * hostname check. A subclass may check by the address connected to.
   */
  protected serverCheck(_socket: Socket): ConnectionOptions["checkServerIdentity"] {
    return this.material.checkServerIdentity;
  }

  _createSecureConnector(): experimental.SecureConnector {
    const { material, host, callCredentials } = this;
    const serverCheck = (socket: Socket) => this.serverCheck(socket);
    return {
      connect(socket: Socket): Promise<experimental.SecureConnectResult> {
        const checkServerIdentity = serverCheck(socket);
        const servername = material.servername ?? (host === undefined || isIP(host) ? undefined : host);
        const options: ConnectionOptions = {
          socket,
          ...(servername ?? host ? { host: servername ?? host } : {}),
          ...(servername ? { servername } : {}),
          ca: material.ca,
          cert: material.cert,
          key: material.key,
          ...(checkServerIdentity ? { checkServerIdentity } : {}),
          ALPNProtocols: ["h2"],
        };
        return new Promise((resolve, reject) => {
          const tlsSocket = connect(options, () => {
            tlsSocket.off("error", reject);
            if (!tlsSocket.authorized) {
              tlsSocket.destroy();
              reject(tlsSocket.authorizationError);
              return;
            }
            resolve({ socket: tlsSocket, secure: true });
          });
          tlsSocket.once("error", reject);
        });
      },
      waitForReady: () => Promise.resolve(),
      getCallCredentials: () => callCredentials,
      destroy: () => undefined,
    };
  }
}
