import { readFileSync, unwatchFile, watchFile } from "node:fs";

/** TlsFiles name PEM files: a certificate and key (and, for mutual TLS, the CA that signs peers). */
export interface TlsFiles {
  certFile: string;
  keyFile: string;
  /** CA bundle that peers' certificates must chain to. Required for mutual TLS. */
  caFile?: string;
}

export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  ca?: Buffer;
}

export function readTlsFiles(files: TlsFiles): TlsMaterial {
  return {
    cert: readFileSync(files.certFile),
    key: readFileSync(files.keyFile),
    ...(files.caFile ? { ca: readFileSync(files.caFile) } : {}),
  };
}

/**
 * watchTlsFiles calls `onChange` with fresh material whenever one of the files changes (polled
 * every `intervalMs`, default 2 s: rotations by cert-manager or a cron job replace files, which
 * fs.watch follows unreliably). Returns a function that stops watching. A half-written file is
 * not fatal: the reload fails, is reported, and the next change retries.
 */
export function watchTlsFiles(files: TlsFiles, onChange: (material: TlsMaterial) => void, onError: (error: unknown) => void, intervalMs = 2000): () => void {
  const paths = [files.certFile, files.keyFile, ...(files.caFile ? [files.caFile] : [])];
  const reload = () => {
    try {
      onChange(readTlsFiles(files));
    } catch (error) {
      onError(error);
    }
  };
  for (const path of paths) watchFile(path, { interval: intervalMs, persistent: false }, reload);
  return () => paths.forEach((path) => unwatchFile(path, reload));
}
