import { timestampMs } from "@bufbuild/protobuf/wkt";
import { BreakerState, type ClientView, type DiscoveryChain, type Intention, type Service, type ServiceDetail } from "../../../../../gen/meshkit/dashboard/v1/dashboard_pb.js";
import { HistoryChart } from "./history-chart.js";
import { ms, percent, rate } from "./format.js";
import { breakerNames, healthNames } from "./health.js";
import { TracesPanel } from "./traces.js";

/** One service: instances, traffic over time and per method, the clients' views, policy, traces. */
export function ServiceDetailView({ service, detail, traceId }: { service: Service; detail: ServiceDetail | undefined; traceId: string | undefined }) {
  return (
    <div class="detail" data-detail={service.name}>
      <section class="panel" aria-labelledby="instances-title">
        <h2 id="instances-title">
          {service.name} <span class="muted">· instances in Consul</span>
        </h2>
        {service.instances.length === 0 ? (
          <p class="empty">No instance is registered.</p>
        ) : (
          <div class="scroll">
            <table>
              <thead>
                <tr>
                  <th scope="col">Instance</th>
                  <th scope="col">Address</th>
                  <th scope="col">Health</th>
                  <th scope="col">Version</th>
                  <th scope="col">Checks</th>
                </tr>
              </thead>
              <tbody>
                {service.instances.map((instance) => (
                  <tr key={instance.id} data-instance={instance.id} data-health={healthNames[instance.health]}>
                    <th scope="row">
                      <code>{instance.id}</code>
                    </th>
                    <td>
                      <code>
                        {instance.address}:{instance.port}
                      </code>
                    </td>
                    <td>
                      <span class={`pill ${healthNames[instance.health]}`}>{healthNames[instance.health]}</span>
                    </td>
                    <td>{instance.version || "—"}</td>
                    <td class="note">{instance.note || "all passing"}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>

      <section class="panel" aria-labelledby="history-title">
        <h2 id="history-title">
          Traffic <span class="muted">· last 10 minutes, per 10 s</span>
        </h2>
        {!detail ? <p class="empty">Loading…</p> : detail.history.length === 0 ? <p class="empty">No calls recorded by Prometheus in the last 10 minutes.</p> : <HistoryChart history={detail.history} />}
      </section>

      <section class="panel" aria-labelledby="routes-title">
        <h2 id="routes-title">
          Routes <span class="muted">· per method, as `linkerd viz routes`</span>
        </h2>
        {service.routes.length === 0 ? (
          <p class="empty">No calls in the last minute.</p>
        ) : (
          <div class="scroll">
            <table>
              <thead>
                <tr>
                  <th scope="col">Method</th>
                  <th scope="col" class="num">
                    Success
                  </th>
                  <th scope="col" class="num">
                    Calls/s
                  </th>
                  <th scope="col" class="num">
                    p50
                  </th>
                  <th scope="col" class="num">
                    p95
                  </th>
                  <th scope="col" class="num">
                    p99
                  </th>
                </tr>
              </thead>
              <tbody>
                {service.routes.map((route) => {
                  const traffic = route.traffic!;
                  const idle = traffic.callsPerSecond === 0;
                  return (
                    <tr key={`${route.grpcService}/${route.method}`} data-route={route.method}>
                      <th scope="row" title={route.grpcService}>
                        <span class="muted">{route.grpcService.split(".").pop()}/</span>
                        {route.method}
                      </th>
                      <td class={`num ${!idle && traffic.successRate < 0.99 ? "bad" : ""}`}>{idle ? "—" : percent(traffic.successRate)}</td>
                      <td class="num">{rate(traffic.callsPerSecond)}</td>
                      <td class="num">{idle ? "—" : ms(traffic.p50Ms)}</td>
                      <td class="num">{idle ? "—" : ms(traffic.p95Ms)}</td>
                      <td class="num">{idle ? "—" : ms(traffic.p99Ms)}</td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        )}
      </section>

      <Clients service={service} />

      <section class="panel" aria-labelledby="policy-title">
        <h2 id="policy-title">
          Intentions and routing <span class="muted">· from Consul</span>
        </h2>
        {!detail ? (
          <p class="empty">Loading…</p>
        ) : (
          <div class="columns">
            <Intentions intentions={detail.intentions} />
            <Chain chain={detail.chain} />
          </div>
        )}
      </section>

      <TracesPanel service={service.name} traces={detail?.traces} traceId={traceId} />
    </div>
  );
}

/** Each calling process's view of the instances: breaker, ejection, calls in flight, latency estimate. */
function Clients({ service }: { service: Service }) {
  return (
    <section class="panel" aria-labelledby="clients-title">
      <h2 id="clients-title">
        Calling clients <span class="muted">· each one's view of the instances (its meshkit_client_* metrics)</span>
      </h2>
      {service.clients.length === 0 ? (
        <p class="empty">No mesh client that Prometheus scrapes calls {service.name}.</p>
      ) : (
        service.clients.map((client) => <ClientTable key={`${client.clientService}/${client.clientInstance}`} client={client} />)
      )}
    </section>
  );
}

function ClientTable({ client }: { client: ClientView }) {
  return (
    <div class="client" data-client={client.clientService} data-client-instance={client.clientInstance}>
      <h3>
        {client.clientService} <code class="muted">{client.clientInstance}</code>
      </h3>
      <div class="scroll">
        <table>
          <thead>
            <tr>
              <th scope="col">Instance</th>
              <th scope="col">Breaker</th>
              <th scope="col">Ejected</th>
              <th scope="col" class="num">
                In flight
              </th>
              <th scope="col" class="num">
                Latency estimate
              </th>
            </tr>
          </thead>
          <tbody>
            {client.endpoints.map((endpoint) => {
              const breaker = breakerNames[endpoint.breaker];
              return (
                <tr key={endpoint.instance} data-endpoint={endpoint.instance} data-breaker={breaker} data-in-pool={String(endpoint.inPool)} class={endpoint.inPool ? undefined : "gone"}>
                  <th scope="row">
                    <code>{endpoint.instance}</code>
                    {!endpoint.inPool && (
                      <span class="muted" title={endpoint.reportedAt ? `last reported ${new Date(timestampMs(endpoint.reportedAt)).toLocaleTimeString()}` : undefined}>
                        {" "}
                        · left the client's pool; last report
                      </span>
                    )}
                  </th>
                  <td>
                    <span class={`pill breaker-${endpoint.breaker === BreakerState.OPEN ? "open" : endpoint.breaker === BreakerState.HALF_OPEN ? "half" : "closed"}`}>{breaker}</span>
                  </td>
                  <td>{endpoint.ejected ? <span class="pill critical">ejected</span> : "no"}</td>
                  <td class="num">{endpoint.outstanding}</td>
                  <td class="num">{ms(endpoint.latencyEstimateMs)}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
    </div>
  );
}

function Intentions({ intentions }: { intentions: readonly Intention[] }) {
  return (
    <div>
      <h3>Intentions</h3>
      {intentions.length === 0 ? (
        <p class="empty">No intention names it: with Consul's default (ACLs off) every caller is allowed.</p>
      ) : (
        <ol class="plain">
          {intentions.map((intention, index) => (
            <li key={index} data-intention={intention.source}>
              <code>{intention.source}</code> →{" "}
              {intention.permissions.length === 0 ? (
                <span class={`pill ${intention.action === "allow" ? "passing" : "critical"}`}>{intention.action}</span>
              ) : (
                <ul class="plain nested">
                  {intention.permissions.map((permission, i) => (
                    <li key={i}>
                      <span class={`pill ${permission.action === "allow" ? "passing" : "critical"}`}>{permission.action}</span> <code>{permission.match}</code>
                    </li>
                  ))}
                </ul>
              )}
              {intention.description && <span class="muted"> · {intention.description}</span>}
            </li>
          ))}
        </ol>
      )}
    </div>
  );
}

function Chain({ chain }: { chain: DiscoveryChain | undefined }) {
  return (
    <div>
      <h3>
        Routing chain {chain?.protocol && <span class="muted">· protocol {chain.protocol}</span>}
      </h3>
      {!chain || chain.nodes.length === 0 ? (
        <p class="empty">No routing chain.</p>
      ) : (
        <ol class="plain chain">
          {chain.nodes.map((node) => (
            <li key={node.id} data-node={node.type}>
              <span class="pill neutral">{node.type}</span> <code>{node.name}</code>
              {node.id === chain.startNode && <span class="muted"> · start</span>}
              {node.routes.map((route, i) => (
                <div key={i} class="muted">
                  {route.match} → <code>{route.nextNode}</code>
                </div>
              ))}
              {node.splits.map((split, i) => (
                <div key={i} class="muted">
                  {split.weight}% → <code>{split.nextNode}</code>
                </div>
              ))}
              {node.type === "resolver" && (
                <div class="muted">
                  target <code>{node.target}</code>
                  {node.connectTimeout && `, connect timeout ${node.connectTimeout}`}
                  {node.failoverTargets.length > 0 && (
                    <>
                      , failover to <code>{node.failoverTargets.join(", ")}</code>
                    </>
                  )}
                  {node.default && " (Consul's default resolver)"}
                </div>
              )}
            </li>
          ))}
        </ol>
      )}
    </div>
  );
}
