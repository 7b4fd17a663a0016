import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { EchoService } from "../../gen/meshkit/echo/v1/echo_pb.js";
import { consul, eventually, grpcCheckStatus, grpcurl, jaegerQueryUrl } from "../support/infra.js";
import { killProcess, startServiceProcess, type ServiceProcess } from "../support/service-process.js";

describe("foundation: a service process, real Consul, real Jaeger, grpcurl", function () {
  this.timeout(90_000);
  // A fresh name per run: Consul and Jaeger keep state between runs of a developer's machine.
  const serviceName = `echo-smoke-${randomUUID().slice(0, 8)}`;
  let echo: ServiceProcess | undefined;

  before(async () => {
    echo = await startServiceProcess("src/reference/services/echo/main.ts", {
      SERVICE_NAME: serviceName,
      CONSUL_CHECK_INTERVAL: "1s",
    });
  });
  after(() => killProcess(echo));

  it("registers in Consul, whose own gRPC health check turns passing", async () => {
    const status = await eventually("the gRPC check to pass", async () =>
      (await grpcCheckStatus(serviceName, echo!.instanceId)) === "passing" ? "passing" : undefined,
    );
    assert.equal(status, "passing");
    const [entry] = (await consul.health.service({ service: serviceName, passing: true })) as {
      Service: { ID: string; Port: number; Meta: Record<string, string> };
    }[];
    assert.equal(entry?.Service.ID, echo!.instanceId);
    assert.equal(entry?.Service.Port, echo!.port);
    assert.equal(entry?.Service.Meta.protocols, "grpc,grpc-web,connect");
  });

  it("answers gRPC calls from a generated Connect client", async () => {
    const client = createClient(EchoService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${echo!.port}` }));
    const reply = await client.echo({ message: "hello" });
    assert.equal(reply.message, "hello");
    assert.equal(reply.instanceId, echo!.instanceId);
    const streamed: number[] = [];
    for await (const part of client.echoStream({ message: "x", count: 3 })) streamed.push(part.sequence);
    assert.deepEqual(streamed, [1, 2, 3]);
  });

  it("answers the Connect protocol with JSON over HTTP/1.1 on the same port", async () => {
    const response = await fetch(`http://127.0.0.1:${echo!.port}/meshkit.echo.v1.EchoService/Echo`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ message: "plain http" }),
    });
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { message: "plain http", instanceId: echo!.instanceId });
  });

  it("lists, describes and calls through server reflection with grpcurl", async () => {
    const target = `127.0.0.1:${echo!.port}`;
    const services = (await grpcurl("-plaintext", target, "list")).trim().split("\n").sort();
    assert.deepEqual(services, [
      "grpc.health.v1.Health",
      "grpc.reflection.v1.ServerReflection",
      "grpc.reflection.v1alpha.ServerReflection",
      "meshkit.echo.v1.EchoService",
    ]);
    const description = await grpcurl("-plaintext", target, "describe", "meshkit.echo.v1.EchoService");
    assert.match(description, /rpc Echo \( \.meshkit\.echo\.v1\.EchoRequest \) returns \( \.meshkit\.echo\.v1\.EchoResponse \)/);
    const reply = JSON.parse(await grpcurl("-plaintext", "-d", '{"message":"via grpcurl"}', target, "meshkit.echo.v1.EchoService/Echo"));
    assert.deepEqual(reply, { message: "via grpcurl", instanceId: echo!.instanceId });
    const health = JSON.parse(await grpcurl("-plaintext", target, "grpc.health.v1.Health/Check"));
    assert.deepEqual(health, { status: "SERVING" });
  });

  it("exports the server span through OpenTelemetry to Jaeger, where the query API finds it", async () => {
    const client = createClient(EchoService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${echo!.port}` }));
    await client.echo({ message: "traced" });
    const span = await eventually("the span in Jaeger", async () => {
      const response = await fetch(`${jaegerQueryUrl}/api/traces?service=${serviceName}&limit=50`);
      const body = (await response.json()) as { data: { spans: { operationName: string; tags: { key: string; value: unknown }[] }[] }[] };
      return body.data.flatMap((trace) => trace.spans).find((s) => s.operationName === "meshkit.echo.v1.EchoService/Echo");
    });
    const tags = Object.fromEntries(span.tags.map((tag) => [tag.key, tag.value]));
    assert.equal(tags["rpc.system"], "grpc");
    assert.equal(tags["rpc.method"], "Echo");
    assert.equal(tags["span.kind"], "server");
  });

  it("traces a health check only inside a caller's trace: Consul's own checks leave no spans", async () => {
    // Consul has checked this instance every second since it started, and grpcurl once, all
    // without a trace context. This check comes inside one.
    const traceId = randomUUID().replaceAll("-", "");
    await grpcurl("-plaintext", "-H", `traceparent: 00-${traceId}-00f067aa0ba902b7-01`, `127.0.0.1:${echo!.port}`, "grpc.health.v1.Health/Check");
    const traced = await eventually("the parented health check's span in Jaeger", async () => {
      const response = await fetch(`${jaegerQueryUrl}/api/traces/${traceId}`);
      if (!response.ok) return undefined;
      const body = (await response.json()) as { data: { spans: { operationName: string }[] }[] };
      return body.data[0]?.spans.find((s) => s.operationName === "grpc.health.v1.Health/Check");
    });
    assert.ok(traced);
    // Exported after every unparented check before it (one batch processor, in order).
    const response = await fetch(`${jaegerQueryUrl}/api/traces?service=${serviceName}&limit=1000`);
    const body = (await response.json()) as { data: { traceID: string; spans: { operationName: string }[] }[] };
    const healthTraces = body.data.filter((trace) => trace.spans.some((s) => s.operationName.startsWith("grpc.health.v1.Health/")));
    assert.deepEqual(
      healthTraces.map((trace) => trace.traceID),
      [traceId],
    );
  });

  it("turns critical when the process stops answering, and passing again when it resumes", async () => {
    echo!.signal("SIGSTOP");
    await eventually("the check to turn critical", async () =>
      (await grpcCheckStatus(serviceName, echo!.instanceId)) === "critical" ? true : undefined,
    );
    echo!.signal("SIGCONT");
    await eventually("the check to pass again", async () =>
      (await grpcCheckStatus(serviceName, echo!.instanceId)) === "passing" ? true : undefined,
    );
  });

  it("deregisters from Consul and exits 0 on SIGTERM", async () => {
    echo!.signal("SIGTERM");
    assert.equal(await echo!.exited, 0, echo!.output.join("\n"));
    const services = (await consul.agent.service.list()) as Record<string, unknown>;
    assert.equal(services[echo!.instanceId], undefined);
    assert.deepEqual(await consul.health.checks(serviceName), []);
  });
});
