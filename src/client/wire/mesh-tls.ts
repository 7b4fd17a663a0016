import type http2 from "node:http2";
import type { PeerCertificate } from "node:tls";
import type { MeshIdentity, MeshMaterial } from "../../platform/mesh/identity.js";
import { parseSpiffeServiceId, uriSans } from "../../platform/mesh/spiffe.js";

/** The mesh client's TLS: session options, the server check they use, and the end of their subscription. */
export interface MeshClientTls {
  /** Session options read afresh at each new connection (wire/live-tls.ts). */
  tls: http2.SecureClientSessionOptions;
  /**
   * Checks a server's certificate: its SPIFFE ID must be of this mesh's trust domain and name
   * the target, or `listed`, the service Consul lists at the address connected to (when the
   * caller knows it: a grpc-js channel whose chain redirected or failed over to another service).
   */
  checkServer(certificate: PeerCertificate, listed?: { service: string; at: string }): Error | undefined;
  stop(): void;
}

/**
 * meshClientTls is the mesh client's side of Consul's mutual TLS: session options that present
 * this service's leaf, trust every current CA root, and accept a server only when its
 * certificate's SPIFFE ID names `target` in this mesh's trust domain (never a hostname: mesh
 * leaves carry none). The object is updated in place when the agent renews the leaf or rotates
 * the roots, so each new connection reads the current material (wire/live-tls.ts).
 */
export function meshClientTls(identity: MeshIdentity, target: string): MeshClientTls {
  let trustDomain = "";
  const checkServer = (certificate: PeerCertificate, listed?: { service: string; at: string }): Error | undefined => {
    const id = parseSpiffeServiceId(uriSans(certificate.subjectaltname)[0] ?? "");
    if (!id) return new Error("the server's certificate carries no SPIFFE service ID: not a mesh service");
    if (id.trustDomain !== trustDomain) return new Error(`the server's SPIFFE ID ${id.uri} is not of this mesh's trust domain ${trustDomain}`);
    if (id.service === target || id.service === listed?.service) return undefined;
    const also = listed ? ` nor "${listed.service}", which Consul lists at ${listed.at}` : "";
    return new Error(`the server's SPIFFE ID names "${id.service}", not "${target}"${also}`);
  };
  const tls: http2.SecureClientSessionOptions = { checkServerIdentity: (_host: string, certificate: PeerCertificate) => checkServer(certificate) };
  const apply = (material: MeshMaterial) => {
    trustDomain = material.trustDomain;
    Object.assign(tls, { ca: material.caPems, cert: material.certPem, key: material.keyPem });
  };
  const current = identity.current();
  if (current) apply(current);
  const stop = identity.subscribe(apply);
  return { tls, checkServer, stop };
}
