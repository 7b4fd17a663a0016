import type { Socket } from "node:net";
import type { ConnectionOptions, PeerCertificate } from "node:tls";
import type { CallCredentials, ChannelCredentials } from "@grpc/grpc-js";
import { LiveTlsCredentials } from "../client/wire/live-tls.js";
import { meshClientTls, type MeshClientTls } from "../client/wire/mesh-tls.js";
import type { MeshIdentity } from "../platform/mesh/identity.js";
import { meshAddressBook } from "./mesh-address-book.js";

/**
 * meshChannelCredentials are grpc-js channel credentials for calling `service` through Consul's
 * service mesh as `identity`'s service: each new connection presents the current leaf, trusts
 * every current CA root, and accepts the server only when its certificate's SPIFFE ID names
 * `service` (mesh leaves carry no hostname to check), or the service that Consul lists at the
 * address connected to, when the channel's discovery chain sent it there (a resolver's
 * `Redirect` or `Failover`, a splitter's leg to another service). A renewed leaf or a root
 * rotation applies to the next connection. Pair it with a `consul:///<service>?mesh=true`
 * target, and create the channel once `identity.ready()` has resolved: a connection made before
 * presents no certificate, and every call on it is refused.
 *
 * ```ts
 * const identity = meshIdentity(consul, { service: "web" });
 * await identity.ready();
 * const client = new grpc.Client("consul:///orders?mesh=true", meshChannelCredentials(identity, "orders"));
 * ```
 *
 * Returns the credentials and `stop`, which ends their subscription to the identity.
 */
export function meshChannelCredentials(identity: MeshIdentity, service: string): ChannelCredentials & { stop(): void } {
  const mesh = meshClientTls(identity, service);
  return Object.assign(new MeshChannelCredentials(mesh, service), { stop: mesh.stop });
}

/** The mesh's live TLS, checking each server by the address connected to (see meshChannelCredentials). */
class MeshChannelCredentials extends LiveTlsCredentials {
  constructor(
    private readonly mesh: MeshClientTls,
    private readonly service: string,
    callCredentials?: CallCredentials,
  ) {
    super(mesh.tls, undefined, callCredentials);
  }

  override compose(callCredentials: CallCredentials): ChannelCredentials {
    return new MeshChannelCredentials(this.mesh, this.service, this.callCredentials.compose(callCredentials));
  }

  protected override serverCheck(socket: Socket): ConnectionOptions["checkServerIdentity"] {
    const { remoteAddress, remotePort } = socket;
    const service = remoteAddress !== undefined && remotePort !== undefined ? meshAddressBook.serviceAt(this.service, remoteAddress, remotePort) : undefined;
    const listed = service !== undefined && service !== this.service ? { service, at: `${remoteAddress}:${remotePort}` } : undefined;
    return (_host: string, certificate: PeerCertificate) => this.mesh.checkServer(certificate, listed);
  }
}
