import type http2 from "node:http2";
import type { PeerCertificate } from "node:tls";
import type { MeshIdentity, MeshMaterial } from "../../platform/mesh/identity.js";
import { parseSpiffeServiceId, uriSans } from "../../platform/mesh/spiffe.js";

/**
 * meshClientTls is the mesh client's side of Consul's mutual TLS: session options that present
 * this service's leaf, trust every current CA root, and accept a server only when its
 * certificate's SPIFFE ID names `target` in this mesh's trust domain (never a hostname: mesh
 * leaves carry none). The object is updated in place when the agent renews the leaf or rotates
 * the roots, so each new connection reads the current material (wire/live-tls.ts).
 */
export function meshClientTls(identity: MeshIdentity, target: string): { tls: http2.SecureClientSessionOptions; stop: () => void } {
  let trustDomain = "";
  const tls: http2.SecureClientSessionOptions = {
    checkServerIdentity: (_host: string, certificate: PeerCertificate) => {
      const id = parseSpiffeServiceId(uriSans(certificate.subjectaltname)[0] ?? "");
      if (!id) return new Error("the server's certificate carries no SPIFFE service ID: not a mesh service");
      if (id.trustDomain !== trustDomain) return new Error(`the server's SPIFFE ID ${id.uri} is not of this mesh's trust domain ${trustDomain}`);
      if (id.service !== target) return new Error(`the server's SPIFFE ID names "${id.service}", not "${target}"`);
      return undefined;
    },
  };
  const apply = (material: MeshMaterial) => {
    trustDomain = material.trustDomain;
    Object.assign(tls, { ca: material.caPems, cert: material.certPem, key: material.keyPem });
  };
  const current = identity.current();
  if (current) apply(current);
  const stop = identity.subscribe(apply);
  return { tls, stop };
}
