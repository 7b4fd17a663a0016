// Compiled (never run) by scripts/check-package.sh against the installed tarball's types, with
// the settings of a strict consumer: moduleResolution nodenext, strict, skipLibCheck false.
import * as grpc from "@grpc/grpc-js";
import { createClient } from "@connectrpc/connect";
import { createMeshTransport, registerBalancer, roundRobinBalancer, type MeshTransportOptions, type Instance } from "meshkit/client";
import { runService, bearerToken, type ServiceDefinition } from "meshkit/server";
import { createConsulClient, readEnv, startTelemetry, type Telemetry } from "meshkit/platform";
import { peakEwmaPolicyName, recommendedClientOptions, recommendedServiceConfig, registerConsulResolver, registerPeakEwmaBalancer, type ServiceConfigJson } from "meshkit/grpc-js";
import { GreeterService } from "../gen/greeter/v1/greeter_pb.js";

const consul = createConsulClient(readEnv().hostPort("CONSUL_HTTP_ADDR", "127.0.0.1:8500"));
const options: MeshTransportOptions = { service: "greeter", consul, balancer: "round_robin", interceptors: [bearerToken("token")] };
const greeter = createClient(GreeterService, createMeshTransport(options));
export const reply: Promise<string> = greeter.sayHello({ name: "types" }).then((response) => response.greeting);
registerBalancer("my_round_robin", roundRobinBalancer);
export const firstPort = (instances: readonly Instance[]): number | undefined => instances[0]?.port;

const definition: ServiceDefinition = {
  name: "greeter",
  version: "1.0.0",
  start: async () => ({ routes: (router) => router.service(GreeterService, { sayHello: (request) => ({ greeting: request.name, instanceId: "x" }) }) }),
};
export const start = (): Promise<void> => runService(definition);
export const telemetry = (): Telemetry => startTelemetry({ serviceName: "greeter", instrumentations: [] });

registerConsulResolver({ consul: { host: "127.0.0.1", port: 8500 } });
registerPeakEwmaBalancer();
const config: ServiceConfigJson = recommendedServiceConfig({ services: [GreeterService], balancer: peakEwmaPolicyName });
export const client = new grpc.Client("consul:///greeter", grpc.credentials.createInsecure(), recommendedClientOptions({ services: [GreeterService] }));
export const retryCodes: string[] = config.methodConfig.flatMap((method) => method.retryPolicy?.retryableStatusCodes ?? []);
