// One service on meshkit's server host: gRPC, gRPC-Web and Connect on one port, health and
// reflection, Consul registration with a gRPC check, validation, tracing, metrics at /metrics,
// and a drain on SIGTERM. Registers as "greeter" (SERVICE_NAME overrides it) with the Consul
// agent at CONSUL_HTTP_ADDR (default 127.0.0.1:8500), on a free port (PORT to choose one).
import { runService } from "meshkit/server";
import { GreeterService } from "./gen/greeter/v1/greeter_pb.js";

await runService({
  name: "greeter",
  version: "1.0.0",
  start: async (_config, { instanceId }) => ({
    routes: (router) =>
      router.service(GreeterService, {
        sayHello: (request) => ({ greeting: `Hello, ${request.name}!`, instanceId }),
      }),
  }),
});
