import { ConnectError } from "@connectrpc/connect";
import { useEffect, useState } from "preact/hooks";
import type { MeshSnapshot, Trace } from "../../../../../gen/meshkit/dashboard/v1/dashboard_pb.js";
import { dashboard } from "./api.js";

export type Connection = { state: "connecting" } | { state: "live" } | { state: "retrying"; error: string };

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => (clearTimeout(timer), resolve()), { once: true });
  });

/**
 * useMesh subscribes to the dashboard's snapshot stream for `service` ("" for the overview
 * alone) and keeps it open: a stream that ends or fails is opened again, after 0.5 s doubling
 * to 5 s, and the last snapshot stays on screen meanwhile.
 */
export function useMesh(service: string): { snapshot: MeshSnapshot | undefined; connection: Connection } {
  const [snapshot, setSnapshot] = useState<MeshSnapshot>();
  const [connection, setConnection] = useState<Connection>({ state: "connecting" });
  useEffect(() => {
    const abort = new AbortController();
    void (async () => {
      let failures = 0;
      while (!abort.signal.aborted) {
        try {
          for await (const answer of dashboard.watchMesh({ service }, { signal: abort.signal })) {
            if (answer.snapshot) setSnapshot(answer.snapshot);
            failures = 0;
            setConnection({ state: "live" });
          }
        } catch (error) {
          if (abort.signal.aborted) return;
          setConnection({ state: "retrying", error: ConnectError.from(error).rawMessage });
        }
        failures++;
        await sleep(Math.min(5000, 250 * 2 ** failures), abort.signal);
      }
    })();
    return () => abort.abort();
  }, [service]);
  return { snapshot, connection };
}

export type TraceState = { state: "idle" } | { state: "loading"; traceId: string } | { state: "error"; traceId: string; error: string } | { state: "ready"; trace: Trace };

/** useTrace reads one trace (GetTrace) when `traceId` is set. */
export function useTrace(traceId: string | undefined): TraceState {
  const [result, setResult] = useState<TraceState>({ state: "idle" });
  useEffect(() => {
    if (!traceId) return setResult({ state: "idle" });
    const abort = new AbortController();
    setResult({ state: "loading", traceId });
    dashboard.getTrace({ traceId }, { signal: abort.signal, timeoutMs: 10_000 }).then(
      (answer) => answer.trace && setResult({ state: "ready", trace: answer.trace }),
      (error: unknown) => !abort.signal.aborted && setResult({ state: "error", traceId, error: ConnectError.from(error).rawMessage }),
    );
    return () => abort.abort();
  }, [traceId]);
  return result;
}

/** The page's place: `#/services/<name>[/traces/<trace id>]`. */
export interface Place {
  service: string;
  traceId: string | undefined;
}

function readPlace(): Place {
  const match = /^#\/services\/([^/]+)(?:\/traces\/([0-9a-f]+))?/.exec(window.location.hash);
  return { service: match ? decodeURIComponent(match[1]!) : "", traceId: match?.[2] };
}

export function placeHref(place: Partial<Place>): string {
  if (!place.service) return "#/";
  return `#/services/${encodeURIComponent(place.service)}${place.traceId ? `/traces/${place.traceId}` : ""}`;
}

export function usePlace(): Place {
  const [place, setPlace] = useState(readPlace);
  useEffect(() => {
    const update = () => setPlace(readPlace());
    window.addEventListener("hashchange", update);
    return () => window.removeEventListener("hashchange", update);
  }, []);
  return place;
}

/** A clock that ticks every `ms`, for "updated 3 s ago". */
export function useNow(ms = 1000): number {
  const [now, setNow] = useState(Date.now);
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(timer);
  }, [ms]);
  return now;
}
