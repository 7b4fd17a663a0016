import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { EchoRequestSchema, EchoResponseSchema, EchoService } from "../../gen/meshkit/echo/v1/echo_pb.js";
import { recommendedClientOptions, registerConsulResolver } from "../../src/grpc-js/index.js";
import { eventually } from "../support/infra.js";
import { runLoad } from "../support/load.js";
import { raiseIndex, startPrivateConsul, type PrivateConsul } from "../support/private-consul.js";
import { killProcess, startServiceProcess, type ServiceProcess } from "../support/service-process.js";

describe("meshkit/grpc-js: Consul going away", function () {
  this.timeout(120_000);
  const service = `echo-grpcjs-outage-${randomUUID().slice(0, 8)}`;
  let privateConsul: PrivateConsul | undefined;
  const instances: ServiceProcess[] = [];
  let client: grpc.Client | undefined;

  before(async () => {
    privateConsul = await startPrivateConsul();
    // Before the instances register, so that their service's index is high: the agent restarted
    // empty below must answer with a lower one, the reset the watch detects.
    await raiseIndex(privateConsul);
    const env = { SERVICE_NAME: service, CONSUL_CHECK_INTERVAL: "1s", CONSUL_HTTP_ADDR: privateConsul.address, CONSUL_REREGISTER_INTERVAL_MS: "500" };
    instances.push(...(await Promise.all([1, 2].map(() => startServiceProcess("src/reference/services/echo/main.ts", env)))));
  });
  after(async () => {
    client?.close();
    await Promise.all(instances.map(killProcess));
    await privateConsul?.stop();
  });

  it("keeps serving a consul://<agent>/ channel while that agent is down and restarts empty, as the mesh client does", async () => {
    registerConsulResolver();
    // The agent named in the target, not the default one.
    client = new grpc.Client(`consul://${privateConsul!.address}/${service}`, grpc.credentials.createInsecure(), recommendedClientOptions({ services: [EchoService] }));
    const echo = () =>
      new Promise<string>((resolve, reject) =>
        client!.makeUnaryRequest(
          `/${EchoService.typeName}/Echo`,
          (message: ReturnType<typeof create<typeof EchoRequestSchema>>) => Buffer.from(toBinary(EchoRequestSchema, message)),
          (bytes: Buffer) => fromBinary(EchoResponseSchema, bytes),
          create(EchoRequestSchema, { message: "through the outage" }),
          { deadline: Date.now() + 5_000 },
          (error, response) => (error ? reject(error) : resolve(response!.instanceId)),
        ),
      );
    await eventually("both instances to answer through the channel", async () => {
      const answered = new Set(await Promise.all(Array.from({ length: 8 }, echo)));
      return answered.size === 2 ? true : undefined;
    });
    // Down at 0.5 s, back (with no data: a -dev agent keeps nothing) at 2.5 s, load until 6 s.
    const outage = (async () => {
      await new Promise((resolve) => setTimeout(resolve, 500));
      await privateConsul!.stop();
      await new Promise((resolve) => setTimeout(resolve, 2000));
      await privateConsul!.start();
    })();
    const result = await runLoad(echo, { durationMs: 6000, concurrency: 4, maxCalls: 50_000 });
    await outage;
    assert.deepEqual(result.errors.map(String), []);
    assert.ok(result.calls > 200, `only ${result.calls} calls`);
  });
});
