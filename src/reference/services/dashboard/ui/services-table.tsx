import type { Service } from "../../../../../gen/meshkit/dashboard/v1/dashboard_pb.js";
import { ms, percent, rate } from "./format.js";
import { healthCounts } from "./health.js";
import { placeHref } from "./hooks.js";

/** Every service: its instances by health and its calls over the window, as `linkerd viz stat`. */
export function ServicesTable({ services, selected, windowSeconds, metrics }: { services: readonly Service[]; selected: string; windowSeconds: number; metrics: boolean }) {
  return (
    <section class="panel services" aria-labelledby="services-title">
      <h2 id="services-title">
        Services <span class="muted">· calls over the last {windowSeconds} s, as the servers recorded them</span>
      </h2>
      {services.length === 0 ? (
        <p class="empty">No service is registered in Consul.</p>
      ) : (
        <div class="scroll">
          <table>
            <thead>
              <tr>
                <th scope="col">Service</th>
                <th scope="col">Instances</th>
                <th scope="col" class="num">
                  Success
                </th>
                <th scope="col" class="num">
                  Calls/s
                </th>
                <th scope="col" class="num opt">
                  p50
                </th>
                <th scope="col" class="num opt">
                  p95
                </th>
                <th scope="col" class="num opt">
                  p99
                </th>
              </tr>
            </thead>
            <tbody>
              {services.map((service) => {
                const traffic = service.traffic;
                const idle = !metrics || !traffic || traffic.callsPerSecond === 0;
                return (
                  <tr key={service.name} data-service={service.name} data-instances={service.instances.length} class={service.name === selected ? "selected" : undefined}>
                    <th scope="row">
                      <a href={placeHref({ service: service.name })} aria-current={service.name === selected ? "page" : undefined}>
                        {service.name}
                      </a>
                    </th>
                    <td>
                      <span class="count">{service.instances.length}</span>
                      {healthCounts(service.instances).map(([health, count]) => (
                        <span key={health} class={`pill ${health}`} title={`${count} ${health}`}>
                          {count} {health}
                        </span>
                      ))}
                    </td>
                    <td class={`num ${!idle && traffic.successRate < 0.99 ? "bad" : ""}`}>{idle ? "—" : percent(traffic.successRate)}</td>
                    <td class="num" data-rps={traffic?.callsPerSecond ?? 0}>
                      {metrics ? rate(traffic?.callsPerSecond ?? 0) : "—"}
                    </td>
                    <td class="num opt">{idle ? "—" : ms(traffic.p50Ms)}</td>
                    <td class="num opt">{idle ? "—" : ms(traffic.p95Ms)}</td>
                    <td class="num opt">{idle ? "—" : ms(traffic.p99Ms)}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
