import assert from "node:assert/strict";
import { createConnectRouter } from "@connectrpc/connect";
import { EchoService } from "../../gen/meshkit/echo/v1/echo_pb.js";
import { Health } from "../../gen/health/v1/health_pb.js";
import { recordRoutes } from "../../src/server/route-recorder.js";

/** recordRoutes: what the lean gRPC path may serve, and what it must leave to connect-node. */
describe("recordRoutes", () => {
  it("records every method of a service mounted without options, by request path, and mounts it on connect too", () => {
    const connect = createConnectRouter();
    const { router, methods } = recordRoutes(connect);
    router.service(EchoService, { echo: (request) => ({ message: request.message }) });
    assert.deepEqual([...methods.keys()].sort(), ["/meshkit.echo.v1.EchoService/Echo", "/meshkit.echo.v1.EchoService/EchoStream"]);
    assert.equal(methods.get("/meshkit.echo.v1.EchoService/Echo")!.kind, "unary");
    assert.equal(methods.get("/meshkit.echo.v1.EchoService/EchoStream")!.kind, "server_streaming");
    assert.equal(connect.handlers.length, 2);
    assert.equal(router.handlers, connect.handlers);
  });

  it("leaves services and methods mounted with options of their own to connect-node alone", () => {
    const connect = createConnectRouter();
    const { router, methods } = recordRoutes(connect);
    router.service(EchoService, {}, { readMaxBytes: 1024 });
    router.rpc(Health.method.check, () => ({}), { interceptors: [] });
    router.rpc(Health.method.list, () => ({}));
    assert.deepEqual([...methods.keys()], ["/grpc.health.v1.Health/List"]);
    assert.equal(connect.handlers.length, 4);
  });
});
