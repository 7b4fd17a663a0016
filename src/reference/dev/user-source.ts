import http from "node:http";
import type { AddressInfo } from "node:net";

/**
 * A stand-in for the third-party user API, for development (`make up`) and tests: serves
 * `count` generated users as JSON pages at `GET /users?offset=N&limit=M`, the contract the
 * user-sync service reads. Deterministic: user i is always the same, except `name`, which
 * carries `generation` so a test can tell a re-sync's writes from the first ones.
 */
export interface UserSourceServer {
  readonly url: string;
  /** Changes what later pages say (names get the new generation). */
  setGeneration(generation: number): void;
  close(): Promise<void>;
}

export async function startUserSource(count: number, { prefix = "u", port = 0 } = {}): Promise<UserSourceServer> {
  let generation = 1;
  const server = http.createServer((request, response) => {
    const url = new URL(request.url ?? "/", "http://localhost");
    if (url.pathname !== "/users") {
      response.writeHead(404).end();
      return;
    }
    const offset = Math.max(0, Number(url.searchParams.get("offset") ?? 0));
    const limit = Math.min(10_000, Math.max(1, Number(url.searchParams.get("limit") ?? 100)));
    const users = [];
    for (let i = offset; i < Math.min(count, offset + limit); i++) {
      const id = `${prefix}${String(i).padStart(7, "0")}`;
      users.push({ id, name: `User ${i} g${generation}`, email: `${id}@example.com`, phone: `+1555${String(i).padStart(7, "0")}`, status: i % 10 === 0 ? "inactive" : "active" });
    }
    response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(users));
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  const { port: bound } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${bound}/users`,
    setGeneration: (next) => (generation = next),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

// Run directly (make up): USER_SOURCE_COUNT users on USER_SOURCE_PORT.
if (import.meta.main) {
  const source = await startUserSource(Number(process.env.USER_SOURCE_COUNT ?? 1000), { port: Number(process.env.USER_SOURCE_PORT ?? 0) });
  console.log(JSON.stringify({ msg: "user source serving", url: source.url }));
}
