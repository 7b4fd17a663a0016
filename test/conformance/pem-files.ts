import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";

/**
 * The suite hands certificates and keys over as bytes, while the server host and the mesh
 * client read TLS material from files (they reload rotated files): this writes them to a private
 * temporary folder, removed when the process exits.
 */
export class PemFiles {
  readonly #dir = mkdtempSync(path.join(os.tmpdir(), "meshkit-conformance-"));
  #count = 0;
  readonly #byContent = new Map<string, string>();

  constructor() {
    process.once("exit", () => rmSync(this.#dir, { recursive: true, force: true }));
  }

  /** write stores `pem` in a file of its own (one per distinct content) and returns its path. */
  write(pem: Uint8Array): string {
    const key = Buffer.from(pem).toString("base64");
    let file = this.#byContent.get(key);
    if (!file) {
      file = path.join(this.#dir, `${++this.#count}.pem`);
      writeFileSync(file, pem, { mode: 0o600 });
      this.#byContent.set(key, file);
    }
    return file;
  }
}
