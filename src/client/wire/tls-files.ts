import { readFileSync } from "node:fs";
import type http2 from "node:http2";
import { watchTlsFiles } from "../../platform/tls-files.js";

/** ClientTlsFiles: trust `caFile`; with `certFile` and `keyFile`, present a client certificate (mutual TLS). */
export interface ClientTlsFiles {
  caFile: string;
  certFile?: string;
  keyFile?: string;
  /** The name checked against the server certificate. Default: the instance address. */
  serverName?: string;
}

/**
 * clientTls reads the TLS files into session options that every endpoint shares, and keeps them
 * current: when a client certificate or key changes, the object is updated in place, so each new
 * connection reads the fresh material. Returns the options and a function that stops watching.
 */
export function clientTls(files: ClientTlsFiles | undefined): { tls: http2.SecureClientSessionOptions | undefined; stop: () => void } {
  if (!files) return { tls: undefined, stop: () => undefined };
  const tls: http2.SecureClientSessionOptions = {
    ca: readFileSync(files.caFile),
    ...(files.certFile && files.keyFile ? { cert: readFileSync(files.certFile), key: readFileSync(files.keyFile) } : {}),
    ...(files.serverName ? { servername: files.serverName } : {}),
  };
  const stop =
    files.certFile && files.keyFile
      ? watchTlsFiles(
          { certFile: files.certFile, keyFile: files.keyFile, caFile: files.caFile },
          (fresh) => Object.assign(tls, fresh),
          () => undefined, // a half-written file: keep the old material, the next change retries
        )
      : () => undefined;
  return { tls, stop };
}
