// Calls the greeter from a plain @grpc/grpc-js client on a consul:/// target, with meshkit's
// resolver and recommended client options (round_robin, outlier detection, retries of the
// idempotent methods, retry throttling).
// GREETER_SERVICE names the service in Consul (default "greeter"); CONSUL_HTTP_ADDR the agent.
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { recommendedClientOptions, registerConsulResolver } from "meshkit/grpc-js";
import { GreeterService, SayHelloRequestSchema, SayHelloResponseSchema } from "./gen/greeter/v1/greeter_pb.js";

const service = process.env.GREETER_SERVICE || "greeter";
registerConsulResolver(); // the agent at CONSUL_HTTP_ADDR, default 127.0.0.1:8500

const client = new grpc.Client(`consul:///${service}`, grpc.credentials.createInsecure(), recommendedClientOptions({ services: [GreeterService] }));
try {
  const reply = await new Promise((resolve, reject) =>
    client.makeUnaryRequest(
      `/${GreeterService.typeName}/${GreeterService.method.sayHello.name}`,
      (request) => Buffer.from(toBinary(SayHelloRequestSchema, request)),
      (bytes) => fromBinary(SayHelloResponseSchema, bytes),
      create(SayHelloRequestSchema, { name: "grpc-js" }),
      new grpc.Metadata(),
      { deadline: Date.now() + 5_000 },
      (error, response) => (error ? reject(error) : resolve(response)),
    ),
  );
  if (reply.greeting !== "Hello, grpc-js!") throw new Error(`unexpected reply: ${JSON.stringify(reply)}`);
  console.log(`grpc-js consul:///${service}: "${reply.greeting}" from ${reply.instanceId}`);
} finally {
  client.close();
}
