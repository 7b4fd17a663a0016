import type { TLSSocket } from "node:tls";
import { spiffeIdOf, type SpiffeServiceId } from "../../platform/mesh/spiffe.js";
import type { CallConnection } from "../call-connection.js";

/** Why a connection carries no mesh identity: a small, fixed set (it is a metric label). */
export type UnauthenticatedReason = "no_certificate" | "untrusted_certificate" | "no_spiffe_id" | "foreign_trust_domain";

/** MeshPeer is who is calling on a connection: a service of this mesh, or nobody, and why. */
export type MeshPeer = { id: SpiffeServiceId; reason?: undefined } | { id?: undefined; reason: UnauthenticatedReason; detail: string };

const peers = new WeakMap<object, MeshPeer>();

/**
 * meshPeerOf reads the caller's service from its client certificate, once per connection: the
 * certificate must chain to one of the mesh's roots (the TLS layer checked it against the roots
 * current at the handshake) and carry a SPIFFE service ID of `trustDomain` as its first URI SAN,
 * as Consul's own Go SDK reads it. Never a hostname. The server asks for a certificate but does
 * not refuse the handshake without one, so that Consul's health check (which has no leaf) can
 * reach grpc.health.v1; everything else is refused per call, with the reason.
 */
export function meshPeerOf(connection: CallConnection | undefined, trustDomain: string): MeshPeer {
  if (!connection) return { reason: "no_certificate", detail: "the call came on no TLS connection" };
  let peer = peers.get(connection);
  if (!peer) {
    peer = readPeer(socketOf(connection), trustDomain);
    peers.set(connection, peer);
  }
  return peer;
}

function socketOf(connection: CallConnection): TLSSocket {
  return ("socket" in connection && "goaway" in connection ? connection.socket : connection) as TLSSocket;
}

function readPeer(socket: TLSSocket, trustDomain: string): MeshPeer {
  const certificate = typeof socket.getPeerX509Certificate === "function" ? socket.getPeerX509Certificate() : undefined;
  if (!certificate) return { reason: "no_certificate", detail: "no client certificate: calls need a leaf certificate from Consul's mesh CA" };
  if (!socket.authorized) {
    const code = (socket.authorizationError as (Error & { code?: string }) | undefined)?.code ?? String(socket.authorizationError);
    return { reason: "untrusted_certificate", detail: `the client certificate does not chain to this mesh's CA roots (${code})` };
  }
  const id = spiffeIdOf(certificate);
  if (!id) return { reason: "no_spiffe_id", detail: "the client certificate carries no SPIFFE service ID" };
  if (id.trustDomain !== trustDomain) return { reason: "foreign_trust_domain", detail: `the client certificate's SPIFFE ID is of trust domain ${id.trustDomain}, not this mesh's` };
  return { id };
}
