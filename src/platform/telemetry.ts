import { randomUUID } from "node:crypto";
import { diag } from "@opentelemetry/api";
import { getNumberFromEnv, getStringListFromEnv } from "@opentelemetry/core";
import { NodeSDK } from "@opentelemetry/sdk-node";
import {
  defaultResource,
  detectResources,
  envDetector,
  hostDetector,
  osDetector,
  processDetector,
  resourceFromAttributes,
  serviceInstanceIdDetector,
  type Resource,
  type ResourceDetector,
} from "@opentelemetry/resources";
import { BatchSpanProcessor } from "@opentelemetry/sdk-trace";
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from "@opentelemetry/semantic-conventions";
import { OtlpGrpcTraceExporter, type OtlpTraceEncoder } from "./otlp-trace-exporter.js";

/** TelemetryOptions configure `startTelemetry`. */
export interface TelemetryOptions {
  /** `service.name` of every span, as Jaeger lists it. */
  serviceName: string;
  serviceVersion?: string;
  /** `service.instance.id`: tells the instances of one service apart (the Consul service id). */
  instanceId?: string;
  /**
   * OTLP/gRPC endpoint of the collector (Jaeger). Default: `OTEL_EXPORTER_OTLP_ENDPOINT`, else
   * http://127.0.0.1:4317. Sampling follows `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`
   * (default: parent-based, always on).
   */
  otlpEndpoint?: string;
  /**
   * OpenTelemetry instrumentations to enable (for example `new PgInstrumentation()` from
   * `@opentelemetry/instrumentation-pg`). Default: none. The toolkit names no database driver
   * itself: a service passes the instrumentations of the libraries it uses, so installing meshkit
   * pulls in none of them.
   */
  instrumentations?: TelemetryInstrumentations;
  /**
   * What writes the OTLP export requests: `meshkit` (our one-pass encoder, otlp-trace-encoder.ts)
   * or `opentelemetry` (@opentelemetry/otlp-transformer's own serializer; the same bytes, more
   * CPU). Default: `MESHKIT_OTLP_TRACE_ENCODER`, else `meshkit`.
   */
  otlpTraceEncoder?: OtlpTraceEncoder;
}

/** What `NodeSDK` accepts as instrumentations (typed through the SDK, which is a dependency). */
export type TelemetryInstrumentations = NonNullable<NonNullable<ConstructorParameters<typeof NodeSDK>[0]>["instrumentations"]>;

export interface Telemetry {
  /** Flushes spans still buffered and stops the SDK. Safe to call more than once. */
  shutdown(): Promise<void>;
}

/**
 * startTelemetry starts the OpenTelemetry Node SDK with OTLP export (batched, flushed every
 * 500 ms; the `OTEL_BSP_*` variables apply, see `batchSettingsFromEnv`) and the instrumentations
 * given in `options.instrumentations`. Nothing starts until it is called: importing this module
 * starts no SDK and no timer. Instrumentations patch modules loaded after this call through
 * `require`, so call it before the instrumented libraries load.
 *
 * ```ts
 * const telemetry = startTelemetry({ serviceName: "orders", instrumentations: [new PgInstrumentation()] });
 * // ... on shutdown:
 * await telemetry.shutdown();
 * ```
 */
export function startTelemetry(options: TelemetryOptions): Telemetry {
  const exporter = new OtlpGrpcTraceExporter({
    url: options.otlpEndpoint ?? process.env.OTEL_EXPORTER_OTLP_ENDPOINT ?? "http://127.0.0.1:4317",
    ...(options.otlpTraceEncoder ? { encoder: options.otlpTraceEncoder } : {}),
  });
  const sdk = new NodeSDK({
    resource: serviceResource(options),
    // Detected in serviceResource, under the service's identity rather than over it.
    autoDetectResources: false,
    spanProcessors: [new BatchSpanProcessor({ exporter, ...batchSettingsFromEnv() })],
    // Traces only. Left to its defaults (OTEL_METRICS_EXPORTER, OTEL_LOGS_EXPORTER unset), the
    // SDK would also start an OTLP metrics reader and an OTLP log exporter aimed at the trace
    // collector, which takes neither: metrics are prom-client's (/metrics), logs are pino's.
    metricReaders: [],
    logRecordProcessors: [],
    instrumentations: options.instrumentations ?? [],
  });
  sdk.start();
  let stopped: Promise<void> | undefined;
  return { shutdown: () => (stopped ??= sdk.shutdown()) };
}

/**
 * The resource of every span: the SDK's defaults (`telemetry.sdk.*`), what the resource
 * detectors find (by default the host, the process's id and runtime, and
 * `OTEL_RESOURCE_ATTRIBUTES`; see `resourceDetectorsFromEnv`), and over both the service's own
 * identity: its name, version and instance id, as registered in Consul.
 *
 * Why not the SDK's own detection: NodeSDK merges what its detectors find over the resource it
 * is given, so its `serviceinstance` detector's random UUID replaced the instance id we set, and
 * Jaeger could not tell which Consul instance served a span.
 */
function serviceResource(options: TelemetryOptions): Resource {
  const identity = resourceFromAttributes({
    [ATTR_SERVICE_NAME]: options.serviceName,
    ...(options.serviceVersion ? { [ATTR_SERVICE_VERSION]: options.serviceVersion } : {}),
    ...(options.instanceId ? { "service.instance.id": options.instanceId } : {}),
  });
  return defaultResource().merge(detectResources({ detectors: resourceDetectorsFromEnv() })).merge(identity);
}

/** The process's id and runtime: the part of the SDK's process detector that tells an instance apart, without its command line. */
const processIdDetector: ResourceDetector = {
  detect: () => ({ attributes: { "process.pid": process.pid, "process.runtime.name": "nodejs", "process.runtime.version": process.versions.node } }),
};

/** The SDK's resource detectors by the names `OTEL_NODE_RESOURCE_DETECTORS` takes (NodeSDK's reader of it is not exported). */
const detectorsByName = new Map<string, ResourceDetector>([
  ["host", hostDetector],
  ["os", osDetector],
  ["serviceinstance", serviceInstanceIdDetector],
  ["process", processDetector],
  // Last, so that OTEL_RESOURCE_ATTRIBUTES is over what the others detect.
  ["env", envDetector],
]);

/**
 * The detectors `OTEL_NODE_RESOURCE_DETECTORS` names (comma-separated, as for NodeSDK: `host`,
 * `os`, `process`, `serviceinstance`, `env`, `all` or `none`). Unset, fewer than the SDK's
 * default: the host, the process's id and runtime, and the environment. Left out are the OS
 * version, the process owner, its executable path and its whole command line, which may carry
 * secrets. A collector stores the resource with every span (Jaeger's memory store copies it
 * into every trace), so every attribute costs in each; `all` brings them back.
 */
function resourceDetectorsFromEnv(): ResourceDetector[] {
  const names = getStringListFromEnv("OTEL_NODE_RESOURCE_DETECTORS");
  if (names === undefined) return [hostDetector, processIdDetector, envDetector];
  if (names.includes("all")) return [...detectorsByName.values()];
  if (names.includes("none")) return [];
  return names.flatMap((name) => {
    const detector = detectorsByName.get(name);
    if (!detector) diag.warn(`unknown resource detector "${name}" in OTEL_NODE_RESOURCE_DETECTORS`);
    return detector ? [detector] : [];
  });
}

/**
 * The batching of spans, from the OpenTelemetry environment variables the SDK reads for its own
 * processor (`OTEL_BSP_SCHEDULE_DELAY`, `OTEL_BSP_MAX_QUEUE_SIZE`, `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`,
 * `OTEL_BSP_EXPORT_TIMEOUT`; milliseconds and span counts). The SDK reads them only when it
 * builds the processor itself, and ours is built here, around our exporter: without this they
 * would be ignored. Unset: the SDK's defaults, but for the delay, 500 ms (the SDK's is 5 s) so
 * that traces show in Jaeger while one looks. A value that is not a non-negative number is
 * ignored (the SDK logs it).
 */
function batchSettingsFromEnv(): { scheduledDelayMillis: number; maxQueueSize?: number; maxExportBatchSize?: number; exportTimeoutMillis?: number } {
  const read = (name: string) => {
    const value = getNumberFromEnv(name);
    return value !== undefined && value >= 0 ? value : undefined;
  };
  const maxQueueSize = read("OTEL_BSP_MAX_QUEUE_SIZE");
  const maxExportBatchSize = read("OTEL_BSP_MAX_EXPORT_BATCH_SIZE");
  const exportTimeoutMillis = read("OTEL_BSP_EXPORT_TIMEOUT");
  return {
    scheduledDelayMillis: read("OTEL_BSP_SCHEDULE_DELAY") ?? 500,
    ...(maxQueueSize !== undefined ? { maxQueueSize } : {}),
    ...(maxExportBatchSize !== undefined ? { maxExportBatchSize } : {}),
    ...(exportTimeoutMillis !== undefined ? { exportTimeoutMillis } : {}),
  };
}

/** The identity of this service process: its name and instance id (as registered in Consul). */
export interface ServiceIdentity {
  name: string;
  version: string;
  instanceId: string;
}

let processTelemetry: { identity: ServiceIdentity; telemetry: Telemetry } | undefined;

/**
 * startServiceTelemetry starts telemetry once per process, for the service named
 * `SERVICE_NAME` (default `defaultName`) with instance id `INSTANCE_ID` (default name-uuid) and
 * the given instrumentations (default none). A service whose libraries are instrumented (pg,
 * ioredis, ...) imports a module calling it before anything else, so that they load after it;
 * `runService` calls it again and gets the same identity and SDK.
 */
export function startServiceTelemetry(
  defaultName: string,
  version: string,
  options: { instrumentations?: TelemetryInstrumentations } = {},
): { identity: ServiceIdentity; telemetry: Telemetry } {
  if (!processTelemetry) {
    const name = process.env.SERVICE_NAME?.trim() || defaultName;
    const identity = { name, version, instanceId: process.env.INSTANCE_ID?.trim() || `${name}-${randomUUID()}` };
    processTelemetry = { identity, telemetry: startTelemetry({
        serviceName: name,
        serviceVersion: version,
        instanceId: identity.instanceId,
        ...(options.instrumentations ? { instrumentations: options.instrumentations } : {}),
      }) };
  }
  return processTelemetry;
}
