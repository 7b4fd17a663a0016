import { X509Certificate } from "node:crypto";

/**
 * A Consul service identity, as its leaf certificate's URI SAN carries it:
 * `spiffe://<trust-domain>/ns/<namespace>/dc/<datacenter>/svc/<service>` (Consul's
 * `connect.SpiffeIDService`, agent/connect/uri_service.go). Consul OSS also writes an `ap/`
 * (admin partition) segment in enterprise builds; it is accepted and kept.
 */
export interface SpiffeServiceId {
  trustDomain: string;
  namespace: string;
  partition?: string;
  datacenter: string;
  service: string;
  /** The whole URI, as it appears in the certificate. */
  uri: string;
}

const serviceUri = /^spiffe:\/\/([^/]+)(?:\/ap\/([^/]+))?\/ns\/([^/]+)\/dc\/([^/]+)\/svc\/([^/]+)$/;

/** parseSpiffeServiceId reads a SPIFFE service ID, or returns undefined for anything else (agent IDs, other URIs). */
export function parseSpiffeServiceId(uri: string): SpiffeServiceId | undefined {
  const match = serviceUri.exec(uri);
  if (!match) return undefined;
  const [, trustDomain, partition, namespace, datacenter, service] = match as unknown as [string, string, string | undefined, string, string, string];
  return {
    trustDomain: trustDomain.toLowerCase(),
    namespace: decodeURIComponent(namespace),
    ...(partition ? { partition: decodeURIComponent(partition) } : {}),
    datacenter: decodeURIComponent(datacenter),
    service: decodeURIComponent(service),
    uri,
  };
}

/**
 * The URI SANs of a certificate. Node's own `subjectaltname` string is the only parsed form it
 * offers; each entry is `URI:<uri>`, comma-separated, with quoting (JSON string syntax) when the
 * value holds a comma or quote (Node's `x509` code escapes such names since 17.3).
 */
export function uriSans(subjectAltName: string | undefined): string[] {
  if (!subjectAltName) return [];
  const uris: string[] = [];
  for (const match of subjectAltName.matchAll(/(?:^|, )URI:("(?:[^"\\]|\\.)*"|[^,]*)/g)) {
    const value = match[1]!;
    uris.push(value.startsWith('"') ? (JSON.parse(value) as string) : value);
  }
  return uris;
}

/**
 * spiffeIdOf returns the SPIFFE service identity in a certificate (DER or PEM), as
 * Consul's Go SDK does: its first URI SAN (connect/tls.go, `verifyServerCertMatchesURI` and
 * `CalculateCertFingerprint` callers read `cert.URIs[0]`).
 */
export function spiffeIdOf(certificate: Buffer | string | X509Certificate): SpiffeServiceId | undefined {
  const x509 = certificate instanceof X509Certificate ? certificate : new X509Certificate(certificate);
  const first = uriSans(x509.subjectAltName)[0];
  return first === undefined ? undefined : parseSpiffeServiceId(first);
}
