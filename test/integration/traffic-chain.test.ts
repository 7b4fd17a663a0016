import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { createClient } from "@connectrpc/connect";
import { Registry } from "prom-client";
import { EchoService } from "../../gen/meshkit/echo/v1/echo_pb.js";
import { createMeshTransport, type MeshTransport, type MeshTransportOptions } from "../../src/client/index.js";
import { consul, eventually, grpcCheckStatus } from "../support/infra.js";
import { consulRequest } from "../support/mesh.js";
import { killProcess, startServiceProcess, type ServiceProcess } from "../support/service-process.js";

/** Writes a config entry to the shared agent (as `consul config write` does, through the HTTP API). */
const writeEntry = (entry: Record<string, unknown>) => consulRequest("PUT", "/config", entry);
const deleteEntry = (kind: string, name: string) => consulRequest("DELETE", `/config/${kind}/${name}`).catch(() => undefined);

function countBy(ids: string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const id of ids) counts.set(id, (counts.get(id) ?? 0) + 1);
  return counts;
}

describe("traffic management from Consul's discovery chain: real Consul, echo processes of two versions", function () {
  this.timeout(180_000);
  const service = `echo-chain-${randomUUID().slice(0, 8)}`;
  const other = `${service}-other`;
  const v1: ServiceProcess[] = [];
  const v2: ServiceProcess[] = [];
  const others: ServiceProcess[] = [];
  const transports: MeshTransport[] = [];
  const kinds = ["service-router", "service-splitter", "service-resolver"];

  const meshClient = (options: Partial<MeshTransportOptions> = {}) => {
    const transport = createMeshTransport({ service, consul, metrics: new Registry(), balancer: "round_robin", ...options });
    transports.push(transport);
    return { transport, client: createClient(EchoService, transport) };
  };
  const versionOf = (id: string) => (v1.some((p) => p.instanceId === id) ? "v1" : v2.some((p) => p.instanceId === id) ? "v2" : others.some((p) => p.instanceId === id) ? "other" : `unknown ${id}`);
  const resetEntries = async () => {
    for (const kind of kinds) {
      await deleteEntry(kind, service);
      await deleteEntry(kind, other);
    }
  };
  /** Waits until `transport` applies a chain for which `holds` is true; returns how long it took. */
  const untilChain = async (transport: MeshTransport, what: string, holds: (chain: Record<string, unknown> | undefined) => boolean, since = performance.now()) => {
    await eventually(what, async () => (holds(transport.routing?.chain === undefined ? undefined : (JSON.parse(transport.routing.chain) as Record<string, unknown>)) ? true : undefined), { timeoutMs: 10_000, intervalMs: 5 });
    return performance.now() - since;
  };
  const subsets = { v1: { Filter: 'Service.Meta.version == "1"' }, v2: { Filter: 'Service.Meta.version == "2"' } };

  before(async () => {
    const env = (version: string, name = service) => ({ SERVICE_NAME: name, SERVICE_VERSION: version, CONSUL_CHECK_INTERVAL: "1s", ECHO_FAULT_SIGNALS: "1" });
    const started = await Promise.all([
      startServiceProcess("src/reference/services/echo/main.ts", env("1")),
      startServiceProcess("src/reference/services/echo/main.ts", env("1")),
      startServiceProcess("src/reference/services/echo/main.ts", env("2")),
      startServiceProcess("src/reference/services/echo/main.ts", env("1", other)),
    ]);
    v1.push(started[0]!, started[1]!);
    v2.push(started[2]!);
    others.push(started[3]!);
    await eventually("every instance to pass", async () => {
      const statuses = await Promise.all([...v1, ...v2].map((i) => grpcCheckStatus(service, i.instanceId)).concat(others.map((i) => grpcCheckStatus(other, i.instanceId))));
      return statuses.every((status) => status === "passing") ? true : undefined;
    });
    // Routers and splitters need an L7 protocol.
    await writeEntry({ Kind: "service-defaults", Name: service, Protocol: "grpc" });
    await writeEntry({ Kind: "service-defaults", Name: other, Protocol: "grpc" });
  });

  afterEach(resetEntries);

  after(async () => {
    for (const transport of transports) transport.close();
    await Promise.all([...v1, ...v2, ...others].map(killProcess));
    await resetEntries();
    await deleteEntry("service-defaults", service);
    await deleteEntry("service-defaults", other);
  });

  it("without config entries the chain is one resolver: calls take the transport's own path, as before", async () => {
    const { transport, client } = meshClient();
    const ids: string[] = [];
    for (let i = 0; i < 300; i++) ids.push((await client.echo({ message: "plain" })).instanceId);
    assert.equal(transport.routing?.trivial, true);
    assert.ok(transport.routing?.chain?.includes('"StartNode"'));
    const counts = countBy(ids);
    for (const instance of [...v1, ...v2]) assert.equal(counts.get(instance.instanceId), 100);
  });

  it("a resolver's DefaultSubset sends every call to the v1 subset within a second, by Consul's own filter; deleting it brings all back", async () => {
    const { transport, client } = meshClient();
    await client.echo({ message: "warm" });
    const written = performance.now();
    await writeEntry({ Kind: "service-resolver", Name: service, DefaultSubset: "v1", Subsets: subsets });
    const lag = await untilChain(transport, "the resolver to apply", (chain) => JSON.stringify(chain ?? {}).includes(`v1.${service}`), written);
    console.log(`      chain applied ${lag.toFixed(0)} ms after the write`);
    assert.ok(lag < 1000, `${lag} ms`);
    const ids: string[] = [];
    for (let i = 0; i < 200; i++) ids.push((await client.echo({ message: "v1 only" })).instanceId);
    assert.deepEqual([...countBy(ids.map(versionOf)).keys()], ["v1"]);
    assert.deepEqual(new Set(ids).size, 2);
    assert.deepEqual([...(transport.routing?.targets.keys() ?? [])], [`v1.${service}.default.default.dc1`]);

    await deleteEntry("service-resolver", service);
    await untilChain(transport, "the resolver's deletion to apply", () => transport.routing?.trivial === true);
    const after: string[] = [];
    for (let i = 0; i < 300; i++) after.push((await client.echo({ message: "all" })).instanceId);
    assert.equal(countBy(after.map(versionOf)).get("v2"), 100);
  });

  it("a 90/10 splitter: measured shares within 2 points of the configured ones over 10,000 calls", async () => {
    const { transport, client } = meshClient();
    await writeEntry({ Kind: "service-resolver", Name: service, Subsets: subsets });
    await writeEntry({ Kind: "service-splitter", Name: service, Splits: [{ Weight: 90, ServiceSubset: "v1" }, { Weight: 10, ServiceSubset: "v2" }] });
    await untilChain(transport, "the splitter to apply", (chain) => JSON.stringify(chain ?? {}).includes('"Type":"splitter"'));
    const versions: string[] = [];
    const worker = async () => {
      while (versions.length < 10_000) versions.push(versionOf((await client.echo({ message: "split" })).instanceId));
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    const counts = countBy(versions.slice(0, 10_000));
    const v2Share = (100 * (counts.get("v2") ?? 0)) / 10_000;
    console.log(`      v1 ${(100 - v2Share).toFixed(2)}%, v2 ${v2Share.toFixed(2)}% of 10,000 calls`);
    assert.ok(Math.abs(v2Share - 10) <= 2, `v2 got ${v2Share}%`);
    assert.equal(counts.get("unknown"), undefined);
  });
});
