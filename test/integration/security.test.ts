import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { SignJWT } from "jose";
import { OrderService } from "../../gen/meshkit/orders/v1/orders_pb.js";
import { bearerToken } from "../../src/server/interceptors/auth.js";
import { killProcess, startServiceProcess, type ServiceProcess } from "../support/service-process.js";

describe("security: bearer tokens and JWTs guard command RPCs", function () {
  this.timeout(60_000);
  const run = randomUUID().slice(0, 8);
  const opsToken = `ops-${randomBytes(12).toString("hex")}`;
  const readerToken = `reader-${randomBytes(12).toString("hex")}`;
  const jwtSecret = randomBytes(32).toString("hex");
  let orders: ServiceProcess;

  before(async () => {
    orders = await startServiceProcess("src/reference/services/orders/main.ts", {
      SERVICE_NAME: `orders-auth-${run}`,
      AUTH_TOKENS: `ops:${opsToken}:meshkit.orders.v1.OrderService:write,reader:${readerToken}:`,
      AUTH_JWT_SECRET: jwtSecret,
    });
  });
  after(() => killProcess(orders));

  const client = (token?: string) =>
    createClient(OrderService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${orders.port}`, interceptors: token ? [bearerToken(token)] : [] }));
  const create = (token: string | undefined, n: number) =>
    client(token)
      .createOrder({ idempotencyKey: `auth-${run}-${n}`, userId: "u", product: "p", quantity: 1, amountCents: 1n })
      .then((reply) => reply, (error: unknown) => ConnectError.from(error));
  const jwt = (scope: string, expiresIn = "5m") =>
    new SignJWT({ scope }).setProtectedHeader({ alg: "HS256" }).setSubject("ci-robot").setIssuedAt().setExpirationTime(expiresIn).sign(new TextEncoder().encode(jwtSecret));

  it("answers UNAUTHENTICATED without a token or with an unknown one", async () => {
    assert.equal(((await create(undefined, 1)) as ConnectError).code, Code.Unauthenticated);
    assert.equal(((await create("not-a-token", 2)) as ConnectError).code, Code.Unauthenticated);
    assert.equal(((await create(await jwt("meshkit.orders.v1.OrderService:write", "-1m"), 3)) as ConnectError).code, Code.Unauthenticated);
  });

  it("answers PERMISSION_DENIED to a known caller without the command's scope", async () => {
    const denied = (await create(readerToken, 4)) as ConnectError;
    assert.equal(denied.code, Code.PermissionDenied);
    assert.match(denied.rawMessage, /caller "reader" lacks the scope "meshkit\.orders\.v1\.OrderService:write"/);
    assert.equal(((await create(await jwt("something:else"), 5)) as ConnectError).code, Code.PermissionDenied);
  });

  it("lets a static token or a JWT with the scope through, and leaves queries open", async () => {
    const byToken = await create(opsToken, 6);
    assert.ok(!(byToken instanceof ConnectError), String(byToken));
    const byJwt = await create(await jwt("meshkit.orders.v1.OrderService:write"), 7);
    assert.ok(!(byJwt instanceof ConnectError), String(byJwt));
    const { order } = await client().getOrder({ id: byToken.order!.id });
    assert.equal(order?.id, byToken.order!.id);
  });

  it("never writes a secret to the logs or the metrics", async () => {
    const metrics = await (await fetch(`http://127.0.0.1:${orders.port}/metrics`)).text();
    for (const secret of [opsToken, readerToken, jwtSecret]) {
      assert.ok(!orders.output.join("\n").includes(secret), "a secret reached the logs");
      assert.ok(!metrics.includes(secret), "a secret reached the metrics");
    }
  });
});
