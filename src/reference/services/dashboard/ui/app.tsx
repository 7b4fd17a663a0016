import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Source, type MeshSnapshot, type SourceProblem } from "../../../../../gen/meshkit/dashboard/v1/dashboard_pb.js";
import { ago } from "./format.js";
import { useMesh, useNow, usePlace, type Connection } from "./hooks.js";
import { ServiceDetailView } from "./service-detail.js";
import { ServicesTable } from "./services-table.js";

const sourceNames: Record<Source, string> = {
  [Source.UNSPECIFIED]: "A source",
  [Source.CONSUL]: "Consul",
  [Source.PROMETHEUS]: "Prometheus",
  [Source.JAEGER]: "Jaeger",
};

/** What a source being out of reach takes off the page. */
const sourceFeeds: Record<Source, string> = {
  [Source.UNSPECIFIED]: "",
  [Source.CONSUL]: "services and instances are as last seen; intentions and routing are not shown.",
  [Source.PROMETHEUS]: "calls, success rates, latencies and the clients' views are not shown.",
  [Source.JAEGER]: "traces are not shown.",
};

export function App() {
  const place = usePlace();
  const { snapshot, connection } = useMesh(place.service);
  const now = useNow();
  const observedMs = snapshot?.observedAt ? timestampMs(snapshot.observedAt) : undefined;
  return (
    <>
      <header class="top">
        <a class="brand" href="#/">
          meshkit <span>mesh</span>
        </a>
        <LiveBadge connection={connection} observedMs={observedMs} now={now} />
      </header>
      <div class="banners" aria-live="polite">
        {connection.state === "retrying" && (
          <p class="banner" role="alert" data-source="dashboard">
            <strong>The dashboard service is out of reach</strong> ({connection.error}): retrying; the page shows what it last received.
          </p>
        )}
        {snapshot?.problems.map((problem) => <ProblemBanner key={problem.source} problem={problem} />)}
      </div>
      <main>{snapshot ? <Mesh snapshot={snapshot} service={place.service} traceId={place.traceId} /> : <Loading connection={connection} />}</main>
    </>
  );
}

function LiveBadge({ connection, observedMs, now }: { connection: Connection; observedMs: number | undefined; now: number }) {
  const stale = observedMs !== undefined && now - observedMs > 5000;
  const state = connection.state === "live" && !stale ? "live" : connection.state === "connecting" ? "connecting" : "stale";
  return (
    <p class={`live live-${state}`} data-state={state}>
      <span class="dot" aria-hidden="true" />
      {state === "live" ? "Live" : state === "connecting" ? "Connecting…" : "Not live"}
      {observedMs !== undefined && <span class="muted"> · updated {ago(observedMs, now)}</span>}
    </p>
  );
}

function ProblemBanner({ problem }: { problem: SourceProblem }) {
  const name = sourceNames[problem.source];
  return (
    <p class="banner" role="alert" data-source={name.toLowerCase()}>
      <strong>{name} is out of reach</strong> at <code>{problem.address}</code>: {sourceFeeds[problem.source]} <span class="muted">({problem.message})</span>
    </p>
  );
}

function Loading({ connection }: { connection: Connection }) {
  return (
    <section class="panel empty" aria-busy="true">
      <p>{connection.state === "retrying" ? "Waiting for the dashboard service…" : "Reading the mesh from Consul, Prometheus and Jaeger…"}</p>
    </section>
  );
}

function Mesh({ snapshot, service, traceId }: { snapshot: MeshSnapshot; service: string; traceId: string | undefined }) {
  const selected = snapshot.services.find((entry) => entry.name === service);
  return (
    <div class={service ? "layout with-detail" : "layout"}>
      <ServicesTable services={snapshot.services} selected={service} windowSeconds={snapshot.windowSeconds} metrics={!snapshot.problems.some((problem) => problem.source === Source.PROMETHEUS)} />
      {service &&
        (selected ? (
          <ServiceDetailView service={selected} detail={snapshot.detail?.service === service ? snapshot.detail : undefined} traceId={traceId} />
        ) : (
          <section class="panel empty">
            <p>
              No service named <code>{service}</code> is registered in Consul now. <a href="#/">All services</a>
            </p>
          </section>
        ))}
    </div>
  );
}
