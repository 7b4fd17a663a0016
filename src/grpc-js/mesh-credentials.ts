import type { ChannelCredentials } from "@grpc/grpc-js";
import { LiveTlsCredentials } from "../client/wire/live-tls.js";
import { meshClientTls } from "../client/wire/mesh-tls.js";
import type { MeshIdentity } from "../platform/mesh/identity.js";

/**
 * meshChannelCredentials are grpc-js channel credentials for calling `service` through Consul's
 * service mesh as `identity`'s service: each new connection presents the current leaf, trusts
 * every current CA root, and accepts the server only when its certificate's SPIFFE ID names
 * `service` (mesh leaves carry no hostname to check). A renewed leaf or a root rotation applies
 * to the next connection. Pair it with a `consul:///<service>?mesh=true` target, and create the
 * channel once `identity.ready()` has resolved: a connection made before presents no
 * certificate, and every call on it is refused.
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
  const { tls, stop } = meshClientTls(identity, service);
  return Object.assign(new LiveTlsCredentials(tls, undefined), { stop });
}
