import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { SignJWT } from "jose";
import { OrderService } from "../../gen/meshkit/orders/v1/orders_pb.js";
import { UserSyncService } from "../../gen/meshkit/users/v1/users_pb.js";
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

describe("security: secure defaults (issue 13): read scope for personal data, strict JWTs, guarded /metrics, failures counted", function () {
  this.timeout(60_000);
  const run = randomUUID().slice(0, 8);
  const service = "meshkit.users.v1.UserSyncService";
  const writerToken = `writer-${randomBytes(12).toString("hex")}`;
  const readerToken = `reader-${randomBytes(12).toString("hex")}`;
  const nobodyToken = `nobody-${randomBytes(12).toString("hex")}`;
  const metricsToken = `metrics-${randomBytes(12).toString("hex")}`;
  const jwtSecret = randomBytes(32).toString("hex");
  let users: ServiceProcess;
  let adminPort: number;

  before(async () => {
    users = await startServiceProcess("src/reference/services/users/main.ts", {
      SERVICE_NAME: `user-sync-auth-${run}`,
      SYNC_INTERVAL_MS: "0",
      AUTH_TOKENS: `writer:${writerToken}:${service}:write,reader:${readerToken}:${service}:read,nobody:${nobodyToken}:`,
      AUTH_JWT_SECRET: jwtSecret,
      AUTH_JWT_ISSUER: "meshkit-ci",
      AUTH_JWT_AUDIENCE: "user-sync",
      METRICS_PORT: "0",
      METRICS_TOKEN: metricsToken,
    });
    const line = users.output.map((l) => JSON.parse(l) as { msg?: string; address?: string }).find((record) => record.msg === "serving /metrics on the admin port");
    adminPort = Number(line!.address!.split(":").pop());
  });
  after(() => killProcess(users));

  const client = (token?: string) =>
    createClient(UserSyncService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${users.port}`, interceptors: token ? [bearerToken(token)] : [] }));
  const getUser = (token: string | undefined, id = `auth-${run}`) =>
    client(token)
      .getUser({ thirdPartyId: id })
      .then((reply) => reply, (error: unknown) => ConnectError.from(error));
  const secret = new TextEncoder().encode(jwtSecret);
  const jwt = (claims: { scope?: string; iss?: string; aud?: string; exp?: number | undefined; alg?: string } = {}) => {
    const { scope = `${service}:read`, iss = "meshkit-ci", aud = "user-sync", alg = "HS256" } = claims;
    const token = new SignJWT({ scope }).setProtectedHeader({ alg }).setSubject("ci-robot").setIssuedAt().setIssuer(iss).setAudience(aud);
    if (!("exp" in claims)) token.setExpirationTime("5m");
    else if (claims.exp !== undefined) token.setExpirationTime(claims.exp);
    return token.sign(secret);
  };
  const nowSeconds = () => Math.floor(Date.now() / 1000);
  const codeOf = (answer: unknown) => (answer instanceof ConnectError ? Code[answer.code] : "OK");

  it("GetUser and ListUsers need the read scope (or write); SyncUsers still needs write", async () => {
    const imported = await client(writerToken).importUsers((async function* () {
      yield { user: { thirdPartyId: `auth-${run}`, email: "auth@example.com" } };
    })());
    assert.equal(imported.synced, 1);
    assert.equal(codeOf(await getUser(undefined)), "Unauthenticated");
    const denied = await getUser(nobodyToken);
    assert.equal(codeOf(denied), "PermissionDenied");
    assert.match((denied as ConnectError).rawMessage, /lacks the scope "meshkit\.users\.v1\.UserSyncService:read"/);
    assert.equal(codeOf(await getUser(readerToken)), "OK");
    assert.equal(codeOf(await getUser(writerToken)), "OK");
    const listed = await client(readerToken).listUsers({ pageSize: 1, pageToken: `auth-${run}` }).then(() => "OK", (e: unknown) => Code[ConnectError.from(e).code]);
    assert.equal(listed, "OK");
    const anonymousList = await client().listUsers({ pageSize: 1 }).then(() => "OK", (e: unknown) => Code[ConnectError.from(e).code]);
    assert.equal(anonymousList, "Unauthenticated");
    const readerSync = await client(readerToken).syncUsers({}).then(() => "OK", (e: unknown) => Code[ConnectError.from(e).code]);
    assert.equal(readerSync, "PermissionDenied");
  });

  it("accepts a JWT only with exp (small skew allowed), the pinned algorithm, and the configured audience and issuer", async () => {
    assert.equal(codeOf(await getUser(await jwt())), "OK");
    // 10 s past exp is inside the 30 s skew; 2 minutes is not.
    assert.equal(codeOf(await getUser(await jwt({ exp: nowSeconds() - 10 }))), "OK");
    const refused = async (claims: Parameters<typeof jwt>[0], reason: string) => {
      const answer = await getUser(await jwt(claims));
      assert.equal(codeOf(answer), "Unauthenticated", `${reason}: ${codeOf(answer)}`);
      assert.match((answer as ConnectError).rawMessage, new RegExp(reason.replaceAll("_", " ")));
    };
    await refused({ exp: nowSeconds() - 120 }, "expired");
    await refused({ exp: undefined }, "missing_exp");
    await refused({ aud: "someone-else" }, "wrong_audience");
    await refused({ iss: "someone-else" }, "wrong_issuer");
    await refused({ alg: "HS512" }, "algorithm_not_allowed");
    // alg "none": an unsigned token with the right claims.
    const unsigned = `${Buffer.from(JSON.stringify({ alg: "none" })).toString("base64url")}.${Buffer.from(JSON.stringify({ scope: `${service}:read`, iss: "meshkit-ci", aud: "user-sync", exp: nowSeconds() + 300 })).toString("base64url")}.`;
    assert.equal(codeOf(await getUser(unsigned)), "Unauthenticated");
    // Signed with another secret.
    const forged = await new SignJWT({ scope: `${service}:read` }).setProtectedHeader({ alg: "HS256" }).setIssuer("meshkit-ci").setAudience("user-sync").setExpirationTime("5m").sign(new TextEncoder().encode("not the secret"));
    assert.equal(codeOf(await getUser(forged)), "Unauthenticated");
  });

  it("serves /metrics only on the admin port and only with the token, and counts refusals by reason, never with a secret", async () => {
    assert.equal((await fetch(`http://127.0.0.1:${users.port}/metrics`)).status, 404);
    assert.equal((await fetch(`http://127.0.0.1:${adminPort}/metrics`)).status, 401);
    assert.equal((await fetch(`http://127.0.0.1:${adminPort}/metrics`, { headers: { authorization: "Bearer wrong" } })).status, 401);
    const response = await fetch(`http://127.0.0.1:${adminPort}/metrics`, { headers: { authorization: `Bearer ${metricsToken}` } });
    assert.equal(response.status, 200);
    const metrics = await response.text();
    const failures = Object.fromEntries(
      [...metrics.matchAll(/^meshkit_server_auth_failures_total\{service="meshkit\.users\.v1\.UserSyncService",reason="(\w+)"\} (\d+)$/gm)].map((m) => [m[1]!, Number(m[2])]),
    );
    // What the two tests above did, exactly.
    assert.deepEqual(failures, {
      missing_token: 2,
      insufficient_scope: 2,
      expired: 1,
      missing_exp: 1,
      wrong_audience: 1,
      wrong_issuer: 1,
      algorithm_not_allowed: 2,
      bad_signature: 1,
    });
    for (const value of [writerToken, readerToken, nobodyToken, metricsToken, jwtSecret]) {
      assert.ok(!users.output.join("\n").includes(value), "a secret reached the logs");
      assert.ok(!metrics.includes(value), "a secret reached the metrics");
    }
  });
});
