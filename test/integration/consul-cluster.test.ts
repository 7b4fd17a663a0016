import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomInt, randomUUID } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { createClient } from "@connectrpc/connect";
import { Registry } from "prom-client";
import { EchoService } from "../../gen/meshkit/echo/v1/echo_pb.js";
import { createMeshTransport, type MeshTransport } from "../../src/client/index.js";
import { createConsulClient, type ConsulClient } from "../../src/platform/consul.js";
import { eventually } from "../support/infra.js";
import { killProcess, projectRoot, startServiceProcess, type ServiceProcess } from "../support/service-process.js";

const execFileAsync = promisify(execFile);

/** Whether nothing listens on 127.0.0.1:`port` right now. */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/**
 * A base port for the cluster's 40 ports (see scripts/consul-cluster.sh), below the kernel's
 * ephemeral range so that other tests' free-port picks do not land in it meanwhile.
 */
async function freeBasePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + 10 * randomInt(0, 1_000);
    const ports = Array.from({ length: 40 }, (_, offset) => base + offset);
    if ((await Promise.all(ports.map(portFree))).every(Boolean)) return base;
  }
  throw new Error("no free block of 40 ports found below 30000");
}

interface RaftServer {
  Node: string;
  Voter: boolean;
  Leader: boolean;
}

describe("a real Consul cluster on loopback (3 servers, 1 client agent): the leader is SIGKILLed under load", function () {
  this.timeout(180_000);
  const run = randomUUID().slice(0, 8);
  const service = `echo-cluster-${run}`;
  let dir = "";
  let clusterEnv: Record<string, string> = {};
  let consul: ConsulClient;
  const processes: ServiceProcess[] = [];
  let transport: MeshTransport | undefined;

  const cluster = (...args: string[]) =>
    execFileAsync(path.join(projectRoot, "scripts/consul-cluster.sh"), args, {
      env: { ...process.env, CONSUL_CLUSTER_DIR: dir, CONSUL_CLUSTER_BASE_PORT: String(clusterEnv.base ?? "") },
      timeout: 90_000,
    });
  const leaderName = async () => (await cluster("leader")).stdout.trim();
  const pidOf = async (node: string) => Number((await readFile(path.join(dir, node, "pid"), "utf8")).trim());
  const startEcho = async () => {
    const echo = await startServiceProcess("src/reference/services/echo/main.ts", {
      SERVICE_NAME: service,
      CONSUL_CHECK_INTERVAL: "1s",
      CONSUL_HTTP_ADDR: clusterEnv.CONSUL_HTTP_ADDR!,
      CONSUL_HTTP_TOKEN: clusterEnv.CONSUL_HTTP_TOKEN!,
    });
    processes.push(echo);
    return echo;
  };
  const passingIds = async () => ((await consul.health.service({ service, passing: true })) as { Service: { ID: string } }[]).map((entry) => entry.Service.ID).sort();

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "meshkit-consul-cluster-"));
    clusterEnv = { base: String(await freeBasePort()) };
    await cluster("up");
    for (const line of (await readFile(path.join(dir, "cluster.env"), "utf8")).trim().split("\n")) {
      const [key, ...value] = line.split("=");
      clusterEnv[key!] = value.join("=");
    }
    const [host, port] = clusterEnv.CONSUL_HTTP_ADDR!.split(":");
    consul = createConsulClient({ host: host!, port: Number(port) }, clusterEnv.CONSUL_HTTP_TOKEN);
  });
  after(async () => {
    transport?.close();
    await Promise.all(processes.map(killProcess));
    if (dir) {
      await cluster("down").catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("elects a new leader; registration, discovery and idempotent calls carry on with 0 errors; the old leader rejoins", async () => {
    // Two instances registered through the client agent, as services on a host register with their local agent.
    const [first, second] = [await startEcho(), await startEcho()];
    await eventually("both instances passing in the cluster's catalog", async () => ((await passingIds()).length === 2 ? true : undefined));

    transport = createMeshTransport({ service, consul, metrics: new Registry(), balancer: "round_robin" });
    const echo = createClient(EchoService, transport);
    const answeredBy = new Map<string, number>();
    const errors: unknown[] = [];
    let calls = 0;
    let loading = true;
    // Bounded: 4 workers, stopped below, and never more than 50,000 calls.
    const load = Promise.all(
      Array.from({ length: 4 }, async () => {
        while (loading && calls < 50_000) {
          calls++;
          try {
            const reply = await echo.echo({ message: "during failover" }, { timeoutMs: 3000 });
            answeredBy.set(reply.instanceId, (answeredBy.get(reply.instanceId) ?? 0) + 1);
          } catch (error) {
            errors.push(error);
          }
        }
      }),
    );
    try {
      await eventually("calls reaching both instances", async () => (answeredBy.has(first.instanceId) && answeredBy.has(second.instanceId) ? true : undefined));

      const oldLeader = await leaderName();
      process.kill(await pidOf(oldLeader), "SIGKILL");
      const killedAt = performance.now();
      const newLeader = await eventually(
        "a new leader among the two servers left",
        async () => {
          const name = await leaderName().catch(() => "");
          return name && name !== oldLeader ? name : undefined;
        },
        { timeoutMs: 30_000, intervalMs: 250 },
      );
      console.log(`      ${oldLeader} killed; ${newLeader} leads after ${Math.round(performance.now() - killedAt)} ms`);

      // Registration and discovery carry on: a third instance, registered now, gets traffic.
      const third = await startEcho();
      await eventually("the instance registered after the failover to receive calls", async () => (answeredBy.has(third.instanceId) ? true : undefined), { timeoutMs: 30_000 });

      // The old leader comes back with its data and rejoins as a voter.
      await cluster("start-node", oldLeader);
      const rejoined = await eventually(
        "the old leader back in the raft configuration as a voter, and an alive member",
        async () => {
          const raft = await fetch(`http://${clusterEnv.CONSUL_HTTP_ADDR}/v1/operator/raft/configuration`, { headers: { "x-consul-token": clusterEnv.CONSUL_HTTP_TOKEN! } });
          if (!raft.ok) return undefined;
          const { Servers } = (await raft.json()) as { Servers: RaftServer[] };
          const members = (await consul.agent.members()) as { Name: string; Status: number }[];
          const back = Servers.find((server) => server.Node === oldLeader)?.Voter && members.find((member) => member.Name === oldLeader)?.Status === 1;
          return back && Servers.filter((server) => server.Voter).length === 3 ? Servers : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 500 },
      );
      assert.equal(rejoined.filter((server) => server.Leader).length, 1);
      assert.deepEqual(await passingIds(), [first.instanceId, second.instanceId, third.instanceId].sort());

      // And deregistration: an instance leaving on SIGTERM leaves the catalog, calls moving off it.
      first.signal("SIGTERM");
      assert.equal(await first.exited, 0);
      assert.deepEqual(await passingIds(), [second.instanceId, third.instanceId].sort());
      const servedBefore = answeredBy.get(second.instanceId)!;
      await eventually("calls to go on to the instances left", async () => ((answeredBy.get(second.instanceId) ?? 0) > servedBefore + 50 ? true : undefined));
    } finally {
      loading = false;
      await load;
    }
    console.log(`      ${calls} calls through the mesh client, ${errors.length} errors, answered by ${JSON.stringify(Object.fromEntries(answeredBy))}`);
    assert.equal(errors.length, 0, `calls failed: ${errors.slice(0, 3).map(String).join("; ")}`);
  });
});
