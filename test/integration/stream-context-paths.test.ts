import assert from "node:assert/strict";
import { AsyncLocalStorage } from "node:async_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { EchoService } from "../../gen/meshkit/echo/v1/echo_pb.js";
import { startServerHost, type ServerHost } from "../../src/server/host.js";

/**
 * A streaming handler's body, and each interceptor's stream wrapper, run in the async context
 * the interceptors set up (src/server/stream-context.ts), on every path a call can take: the lean
 * gRPC path, which enters that context once per call, and connect-node (gRPC with the lean path
 * off, and the Connect protocol), whose writer steps into it once per message.
 */
describe("server host: streamed responses are produced in the interceptors' async context, on every path", function () {
  this.timeout(30_000);
  const outer = new AsyncLocalStorage<string>();
  const inner = new AsyncLocalStorage<string>();
  const seenByWrapper: string[] = [];

  const storing = (store: AsyncLocalStorage<string>, value: string): Interceptor => (next) => (request) => store.run(value, () => next(request));
  // An interceptor that watches each message go by, as a logging interceptor would.
  const watching: Interceptor = (next) => async (request) => {
    const response = await next(request);
    if (!response.stream) return response;
    const messages = response.message;
    return {
      ...response,
      message: (async function* () {
        for await (const message of messages) {
          seenByWrapper.push(`${outer.getStore()}/${inner.getStore()}`);
          yield message;
        }
      })(),
    };
  };
  const routes = (router: Parameters<Parameters<typeof startServerHost>[0]["routes"]>[0]) =>
    router.service(EchoService, {
      echo: (request) => ({ message: request.message }),
      async *echoStream(request) {
        for (let sequence = 1; sequence <= request.count; sequence++) {
          await sleep(2); // past the first await: the body is resumed by the writer's next()
          yield { message: `${outer.getStore()}/${inner.getStore()}`, sequence };
        }
      },
    });
  const interceptors = [storing(outer, "outer-set"), watching, storing(inner, "inner-set")];

  let lean: ServerHost, connectNode: ServerHost;
  before(async () => {
    lean = await startServerHost({ routes, interceptors });
    connectNode = await startServerHost({ routes, interceptors, leanGrpcPath: false });
  });
  after(async () => {
    await Promise.all([lean.drain(1000), connectNode.drain(1000)]);
  });

  const paths: [string, () => Transport][] = [
    ["gRPC on the lean path", () => createGrpcTransport({ baseUrl: `http://127.0.0.1:${lean.port}` })],
    ["gRPC through connect-node", () => createGrpcTransport({ baseUrl: `http://127.0.0.1:${connectNode.port}` })],
    ["Connect over HTTP/2 (connect-node on the lean host's port)", () => createConnectTransport({ baseUrl: `http://127.0.0.1:${lean.port}`, httpVersion: "2" })],
  ];
  for (const [name, transport] of paths) {
    it(`${name}: every message sees both interceptors' stores, in the body and in a wrapper`, async () => {
      seenByWrapper.length = 0;
      const messages: string[] = [];
      for await (const part of createClient(EchoService, transport()).echoStream({ message: "m", count: 5 })) messages.push(part.message);
      assert.deepEqual(messages, Array(5).fill("outer-set/inner-set"));
      assert.deepEqual(seenByWrapper, Array(5).fill("outer-set/inner-set"));
    });
  }
});
