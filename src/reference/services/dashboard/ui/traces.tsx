import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Fragment } from "preact";
import { useState } from "preact/hooks";
import type { Span, Trace, TraceSummary } from "../../../../../gen/meshkit/dashboard/v1/dashboard_pb.js";
import { clock, ms } from "./format.js";
import { serviceHue } from "./health.js";
import { placeHref, useTrace } from "./hooks.js";

/** A service's recent traces, and the one chosen drawn as a waterfall. */
export function TracesPanel({ service, traces, traceId }: { service: string; traces: readonly TraceSummary[] | undefined; traceId: string | undefined }) {
  const chosen = useTrace(traceId);
  return (
    <section class="panel" aria-labelledby="traces-title">
      <h2 id="traces-title">
        Recent traces <span class="muted">· from Jaeger, last 15 minutes</span>
      </h2>
      {!traces ? (
        <p class="empty">Loading…</p>
      ) : traces.length === 0 ? (
        <p class="empty">No trace with a span of {service} in the last 15 minutes.</p>
      ) : (
        <div class="scroll traces">
          <table>
            <thead>
              <tr>
                <th scope="col">Started</th>
                <th scope="col">Root</th>
                <th scope="col">Services</th>
                <th scope="col" class="num">
                  Spans
                </th>
                <th scope="col" class="num">
                  Duration
                </th>
              </tr>
            </thead>
            <tbody>
              {traces.map((trace) => (
                <tr key={trace.traceId} data-trace={trace.traceId} data-root={trace.rootOperation} class={trace.traceId === traceId ? "selected" : undefined}>
                  <td>{trace.startedAt ? clock(timestampMs(trace.startedAt)) : ""}</td>
                  <th scope="row">
                    <a href={placeHref({ service, traceId: trace.traceId })} aria-current={trace.traceId === traceId ? "true" : undefined}>
                      <span class="muted">{trace.rootService}:</span> {trace.rootOperation}
                    </a>
                    {trace.errorCount > 0 && <span class="pill critical">{trace.errorCount} errors</span>}
                  </th>
                  <td>{trace.services.join(", ")}</td>
                  <td class="num">{trace.spanCount}</td>
                  <td class="num">{ms(trace.durationMs)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {chosen.state === "loading" && <p class="empty">Reading trace {chosen.traceId} from Jaeger…</p>}
      {chosen.state === "error" && (
        <p class="banner" role="alert" data-source="trace">
          Trace {chosen.traceId}: {chosen.error}
        </p>
      )}
      {chosen.state === "ready" && <Waterfall trace={chosen.trace} service={service} />}
    </section>
  );
}

/** Time-axis ticks: about five, at round values. */
function ticks(totalMs: number): number[] {
  if (totalMs <= 0) return [0];
  const rough = totalMs / 5;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= rough) ?? rough;
  const list: number[] = [];
  for (let t = 0; t <= totalMs + 1e-9; t += step) list.push(t);
  return list;
}

/**
 * Waterfall: one row per span, parents before children and indented under them, each a bar on
 * the trace's time axis (its service's colour, red when it failed) labelled with its service,
 * operation, status and duration. A row is a button: it shows or hides the span's attributes.
 */
export function Waterfall({ trace, service }: { trace: Trace; service: string }) {
  const [open, setOpen] = useState<string>();
  const total = trace.durationMs || 1;
  const services = [...new Set(trace.spans.map((span) => span.service))];
  return (
    <div class="waterfall" data-waterfall={trace.traceId} data-services={services.join(",")}>
      <h3>
        Trace <code>{trace.traceId}</code> <span class="muted">· {trace.spans.length} spans, {ms(trace.durationMs)}</span>{" "}
        <a href={placeHref({ service })}>close</a>
      </h3>
      <p class="legend">
        {services.map((name) => (
          <span key={name} class="swatch" style={{ "--hue": serviceHue(name) }}>
            {name}
          </span>
        ))}
      </p>
      <div class="axis" aria-hidden="true">
        {ticks(total).map((t) => (
          <span key={t} style={{ left: `${(t / total) * 100}%` }}>
            {ms(t) === "—" ? "0" : ms(t)}
          </span>
        ))}
      </div>
      <ol class="spans">
        {trace.spans.map((span) => (
          <SpanRow key={span.spanId} span={span} total={total} open={open === span.spanId} toggle={() => setOpen(open === span.spanId ? undefined : span.spanId)} />
        ))}
      </ol>
    </div>
  );
}

function SpanRow({ span, total, open, toggle }: { span: Span; total: number; open: boolean; toggle: () => void }) {
  const left = (span.startMs / total) * 100;
  const width = Math.max(0.3, (span.durationMs / total) * 100);
  return (
    <li data-span={span.spanId} data-span-service={span.service} data-depth={span.depth}>
      <button type="button" class={`span ${span.error ? "error" : ""}`} aria-expanded={open} onClick={toggle} style={{ "--depth": span.depth, "--hue": serviceHue(span.service) }}>
        <span class="label" title={`${span.service} ${span.operation}`}>
          <span class="service">{span.service}</span> {span.operation}
        </span>
        <span class="track">
          <span class="bar" style={{ left: `${left}%`, width: `${width}%` }} />
          <span class="bar-text" style={{ left: `${Math.min(left, 70)}%` }}>
            {span.service} · {span.status} · {ms(span.durationMs)}
          </span>
        </span>
      </button>
      {open && (
        <dl class="attributes">
          <dt>span</dt>
          <dd>
            <code>{span.spanId}</code> {span.kind && `(${span.kind})`} at +{ms(span.startMs)}
          </dd>
          {span.attributes.map((attribute, i) => (
            <Fragment key={i}>
              <dt>{attribute.key}</dt>
              <dd>
                <code>{attribute.value}</code>
              </dd>
            </Fragment>
          ))}
        </dl>
      )}
    </li>
  );
}
