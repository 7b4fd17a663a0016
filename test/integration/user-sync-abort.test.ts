import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { readUserSource } from "../../src/reference/services/users/source.js";

/**
 * A user source on a real HTTP server whose page at `failingOffset` always answers 500, and whose
 * other pages take 30 ms and never end (every page full): only a failure stops a read of it.
 */
async function startFailingSource(failingOffset: number, pageSize: number) {
  const requests: number[] = [];
  const server = http.createServer((request, response) => {
    const offset = Number(new URL(request.url ?? "/", "http://localhost").searchParams.get("offset"));
    requests.push(offset);
    if (offset === failingOffset) {
      response.writeHead(500).end();
      return;
    }
    setTimeout(() => response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(Array.from({ length: pageSize }, (_, i) => ({ id: `u${offset + i}` })))), 30);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/users`,
    requests,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe("a user sync whose source fails stops all its workers (issue 13, case 4)", () => {
  it("rejects with the page's error only after every worker stopped, and nothing fetches or writes after", async () => {
    const pageSize = 10;
    const source = await startFailingSource(5 * pageSize, pageSize);
    try {
      let pagesHandled = 0;
      let writing = 0;
      const error = await readUserSource({ url: source.url, pageSize, concurrency: 4, timeoutMs: 2000, attempts: 2 }, async () => {
        writing++;
        await sleep(40); // an upsert in flight when the failure comes
        writing--;
        pagesHandled++;
      }).then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      assert.match(String(error), /answered 500/);
      assert.equal(writing, 0, "an onPage call was still running when the read rejected");
      // Requests written before the abort may still reach the server (it runs in this process):
      // let them land, then nothing more may come.
      await sleep(100);
      const requestsAtReturn = source.requests.length;
      const pagesAtReturn = pagesHandled;
      await sleep(500);
      assert.equal(source.requests.length, requestsAtReturn, `${source.requests.length - requestsAtReturn} requests after the read rejected`);
      assert.equal(pagesHandled, pagesAtReturn, "pages handled after the read rejected");
      // Bounded: the read stopped near the failing page instead of running on.
      assert.ok(requestsAtReturn < 30, `${requestsAtReturn} requests`);
    } finally {
      await source.close();
    }
  });

  it("stops when the caller aborts", async () => {
    const source = await startFailingSource(-1, 10);
    try {
      const abort = new AbortController();
      setTimeout(() => abort.abort(new Error("caller gave up")), 200);
      const error = await readUserSource({ url: source.url, pageSize: 10, concurrency: 3, timeoutMs: 2000, attempts: 2 }, async () => undefined, abort.signal).catch((e: unknown) => e);
      assert.match(String(error), /caller gave up/);
      await sleep(100); // requests written before the abort may still land
      const requests = source.requests.length;
      await sleep(300);
      assert.equal(source.requests.length, requests);
    } finally {
      await source.close();
    }
  });
});
