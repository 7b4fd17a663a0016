// Calls the greeter through meshkit's mesh client: Consul discovery, balancing, breakers,
// failover and budgeted retries behind one Connect transport.
// GREETER_SERVICE names the service in Consul (default "greeter"); CONSUL_HTTP_ADDR the agent.
import { createClient } from "@connectrpc/connect";
import { createMeshTransport } from "meshkit/client";
import { createConsulClient, defaultConsulAddress, readEnv } from "meshkit/platform";
import { GreeterService } from "./gen/greeter/v1/greeter_pb.js";

const env = readEnv();
const service = env.string("GREETER_SERVICE", "greeter");
const consul = createConsulClient(env.hostPort("CONSUL_HTTP_ADDR", defaultConsulAddress));
env.done();

const transport = createMeshTransport({ service, consul });
try {
  const greeter = createClient(GreeterService, transport);
  const reply = await greeter.sayHello({ name: "mesh client" }, { timeoutMs: 5_000 });
  if (reply.greeting !== "Hello, mesh client!") throw new Error(`unexpected reply: ${JSON.stringify(reply)}`);
  console.log(`createMeshTransport: "${reply.greeting}" from ${reply.instanceId}`);
} finally {
  transport.close();
}
