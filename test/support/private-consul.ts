import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { once } from "node:events";
import { promisify } from "node:util";
import { createConsulClient, type ConsulClient } from "../../src/platform/consul.js";
import { eventually } from "./infra.js";
import { freePort } from "./free-port.js";

/**
 * A Consul agent of the test's own (`consul agent -dev` on free loopback ports), for tests that
 * stop and restart Consul without disturbing the shared one.
 */
export interface PrivateConsul {
  readonly httpPort: number;
  /** Its serf WAN port: what another datacenter's server joins (`consul join -wan`). */
  readonly serfWanPort: number;
  readonly address: string;
  readonly client: ConsulClient;
  /** The agent's process id while it runs (benches read its CPU time from /proc). */
  readonly pid: number | undefined;
  stop(): Promise<void>;
  start(): Promise<void>;
}

/**
 * Extra agent configuration in HCL (for example ACLs), written to a file the agent loads;
 * `datacenter` (default dc1) and `primaryDatacenter` for a second datacenter (startPrivateWan);
 * `extraArgs` go to `consul agent` as they are. `server: true` starts a single server as in
 * production instead of a -dev agent (its state in a temporary data dir): a -dev agent indents
 * every JSON answer, three times the bytes of the compact answers production agents write.
 */
export async function startPrivateConsul(
  extraHcl?: string,
  { datacenter, primaryDatacenter, extraArgs = [], server: asServer = false }: { datacenter?: string; primaryDatacenter?: string; extraArgs?: string[]; server?: boolean } = {},
): Promise<PrivateConsul> {
  const configArgs: string[] = [];
  if (asServer) configArgs.push("-server", "-bootstrap-expect", "1", "-data-dir", await mkdtemp(path.join(os.tmpdir(), "meshkit-consul-data-")));
  if (extraHcl) {
    const dir = await mkdtemp(path.join(os.tmpdir(), "meshkit-consul-"));
    await writeFile(path.join(dir, "extra.hcl"), extraHcl);
    configArgs.push("-config-file", path.join(dir, "extra.hcl"));
  }
  let ports = await agentPorts();
  let client = createConsulClient({ host: "127.0.0.1", port: ports.http }, managementToken(extraHcl));
  let child: ChildProcess | undefined;
  const start = async () => {
    const { http, grpc, grpcTls, serfLan, serfWan, server } = ports;
    const agent = spawn(
      "consul",
      ["agent", ...(asServer ? [] : ["-dev"]), "-bind", "127.0.0.1", "-client", "127.0.0.1", "-http-port", String(http), "-grpc-port", String(grpc), "-grpc-tls-port", String(grpcTls),
        "-serf-lan-port", String(serfLan), "-serf-wan-port", String(serfWan), "-server-port", String(server), "-dns-port", "-1", "-log-level", "error", ...configArgs,
        ...(datacenter ? ["-datacenter", datacenter] : []), ...(primaryDatacenter ? ["-hcl", `primary_datacenter = "${primaryDatacenter}"`] : []), ...extraArgs],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    child = agent;
    const output = tailOf(agent);
    const exited = once(agent, "exit").then(([code, signal]) => {
      throw new AgentExited(`the private Consul exited (${signal ?? `code ${code}`}) before it elected itself; its last output:\n${output()}`);
    });
    exited.catch(() => {});
    try {
      await Promise.race([exited, eventually("the private Consul to elect itself", async () => ((await client.status.leader()) ? true : undefined), { timeoutMs: 30_000 })]);
    } catch (error) {
      agent.kill("SIGKILL");
      throw error;
    }
    // With ACLs on, the agent takes a moment more to accept the management token.
    if (extraHcl) await eventually("the private Consul's ACL system", async () => ((await client.agent.service.list()) ? true : undefined), { timeoutMs: 30_000 });
  };
  const stop = async () => {
    if (!child || child.exitCode !== null) return;
    const exited = once(child, "exit");
    child.kill("SIGKILL");
    await exited;
  };
  // freePort's ports are free when chosen, not reserved: another process (a test's outgoing
  // connection among them) can take one before the agent binds it, and the agent then exits at
  // once. The first start retries on fresh ports; a restart (start()) keeps the agent's ports, as
  // its clients expect.
  for (let attempt = 1; ; attempt++) {
    try {
      await start();
      break;
    } catch (error) {
      if (!(error instanceof AgentExited) || attempt === 3) throw error;
      ports = await agentPorts();
      client = createConsulClient({ host: "127.0.0.1", port: ports.http }, managementToken(extraHcl));
    }
  }
  return {
    httpPort: ports.http,
    serfWanPort: ports.serfWan,
    address: `127.0.0.1:${ports.http}`,
    client,
    get pid() {
      return child?.exitCode === null ? child.pid : undefined;
    },
    start,
    stop,
  };
}


/** The ports one agent listens on, each free on loopback when chosen. */
async function agentPorts() {
  const [http, grpc, grpcTls, serfLan, serfWan, server] = (await Promise.all(Array.from({ length: 6 }, freePort))) as [number, number, number, number, number, number];
  if (new Set([http, grpc, grpcTls, serfLan, serfWan, server]).size < 6) return agentPorts();
  return { http, grpc, grpcTls, serfLan, serfWan, server };
}

class AgentExited extends Error {}

/** The last 4 KB the agent wrote to stdout and stderr, for the error that says why it stopped. */
function tailOf(agent: ChildProcess): () => string {
  let tail = "";
  const keep = (chunk: Buffer) => {
    tail = (tail + chunk.toString()).slice(-4096);
  };
  agent.stdout?.on("data", keep);
  agent.stderr?.on("data", keep);
  return () => tail;
}

/** The initial management token of an ACL config, so the harness itself can talk to that agent. */
function managementToken(hcl: string | undefined): string | undefined {
  return hcl ? /initial_management\s*=\s*"([^"]+)"/.exec(hcl)?.[1] : undefined;
}

/**
 * Raises the agent's raft index by `writes` key/value writes (each is one raft entry). A -dev
 * agent keeps nothing across a restart and starts its raft log again from the first entry. A
 * test that restarts it empty raises the index before its instances register, so that their
 * service's index (what the health API reports) is high and the restarted agent's surely below
 * it: the reset the mesh's watch detects (src/client/discovery/consul.ts). Registered early in a
 * young agent's life, a service's index can be lower than what the restarted agent reaches
 * before the instances register again, and the reset go unseen (a flake seen once in CI).
 */
export async function raiseIndex(consul: PrivateConsul, writes = 300): Promise<void> {
  for (let done = 0; done < writes; done += 20) {
    await Promise.all(Array.from({ length: Math.min(20, writes - done) }, (_, i) => consul.client.kv.set(`meshkit-test/raise-index/${done + i}`, "x")));
  }
}

/** Two single-server datacenters joined over the WAN, each a private agent on free ports. */
export interface PrivateWan {
  readonly dc1: PrivateConsul;
  readonly dc2: PrivateConsul;
  stop(): Promise<void>;
}

/**
 * startPrivateWan starts two `consul agent -dev` servers, datacenters dc1 and dc2 (dc2 names dc1
 * its primary, so it takes dc1's Connect CA and config entries replicate to it), and joins them
 * over the WAN (`consul join -wan`), as scripts/consul-wan.sh does with real data directories.
 * Resolves once each sees both datacenters: a query with `?dc=dc2` asked of dc1 is then
 * forwarded to dc2's server.
 */
export async function startPrivateWan(): Promise<PrivateWan> {
  const dc1 = await startPrivateConsul(undefined, { datacenter: "dc1" });
  const dc2 = await startPrivateConsul(undefined, { datacenter: "dc2", primaryDatacenter: "dc1" });
  await promisify(execFile)("consul", ["join", "-wan", `-http-addr=${dc2.address}`, `127.0.0.1:${dc1.serfWanPort}`], { timeout: 15_000 });
  for (const agent of [dc1, dc2]) {
    await eventually("both datacenters known over the WAN", async () => (((await agent.client.catalog.datacenters()) as string[]).length === 2 ? true : undefined), { timeoutMs: 30_000 });
  }
  return {
    dc1,
    dc2,
    async stop() {
      await Promise.all([dc1.stop(), dc2.stop()]);
    },
  };
}
