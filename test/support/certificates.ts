import { execFile } from "node:child_process";
import { mkdtemp, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";

const openssl = (...args: string[]) => promisify(execFile)("openssl", args);

/** A throwaway PKI made with the openssl CLI: a CA, and certificates it signs. */
export interface TestPki {
  dir: string;
  caFile: string;
  /** Issues `name`.crt/.key signed by this CA, for 127.0.0.1 and localhost. */
  issue(name: string): Promise<{ certFile: string; keyFile: string }>;
}

export async function createTestPki(label: string): Promise<TestPki> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `meshkit-pki-${label}-`));
  const caKey = path.join(dir, "ca.key");
  const caFile = path.join(dir, "ca.crt");
  await openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", caKey, "-out", caFile, "-days", "2", "-subj", `/CN=meshkit test CA ${label}`);
  const extensions = path.join(dir, "san.ext");
  await writeFile(extensions, "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n");
  return {
    dir,
    caFile,
    async issue(name) {
      const keyFile = path.join(dir, `${name}.key`);
      const csr = path.join(dir, `${name}.csr`);
      const certFile = path.join(dir, `${name}.crt`);
      await openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", keyFile, "-out", csr, "-subj", `/CN=${name}`);
      await openssl("x509", "-req", "-in", csr, "-CA", caFile, "-CAkey", caKey, "-CAcreateserial", "-out", certFile, "-days", "2", "-extfile", extensions);
      return { certFile, keyFile };
    },
  };
}
