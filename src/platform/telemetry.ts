import { randomUUID } from "node:crypto";
import { NodeSDK } from "@opentelemetry/sdk-node";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-grpc";
import { IORedisInstrumentation } from "@opentelemetry/instrumentation-ioredis";
import { PgInstrumentation } from "@opentelemetry/instrumentation-pg";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor } from "@opentelemetry/sdk-trace";
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from "@opentelemetry/semantic-conventions";

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
}

export interface Telemetry {
  /** Flushes spans still buffered and stops the SDK. Safe to call more than once. */
  shutdown(): Promise<void>;
}

/**
 * startTelemetry starts the OpenTelemetry Node SDK with OTLP export, and the pg and ioredis
 * instrumentations: PostgreSQL queries and Redis commands made inside a traced call become its
 * child spans (`requireParentSpan`, so background polling such as the outbox relay's does not
 * flood the trace store). The instrumentations patch modules loaded after this call through
 * `require`: see `loadAfterTelemetry`.
 */
export function startTelemetry(options: TelemetryOptions): Telemetry {
  const exporter = new OTLPTraceExporter({
    url: options.otlpEndpoint ?? process.env.OTEL_EXPORTER_OTLP_ENDPOINT ?? "http://127.0.0.1:4317",
  });
  const sdk = new NodeSDK({
    resource: resourceFromAttributes({
      [ATTR_SERVICE_NAME]: options.serviceName,
      ...(options.serviceVersion ? { [ATTR_SERVICE_VERSION]: options.serviceVersion } : {}),
      ...(options.instanceId ? { "service.instance.id": options.instanceId } : {}),
    }),
    spanProcessors: [new BatchSpanProcessor({ exporter, scheduledDelayMillis: 500 })],
    instrumentations: [new PgInstrumentation({ requireParentSpan: true }), new IORedisInstrumentation({ requireParentSpan: true })],
  });
  sdk.start();
  let stopped: Promise<void> | undefined;
  return { shutdown: () => (stopped ??= sdk.shutdown()) };
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
 * `SERVICE_NAME` (default `defaultName`) with instance id `INSTANCE_ID` (default name-uuid).
 * A service's entry point imports a module calling it before anything else, so that pg and ioredis
 * are instrumented; `runService` calls it again and gets the same identity and SDK.
 */
export function startServiceTelemetry(defaultName: string, version: string): { identity: ServiceIdentity; telemetry: Telemetry } {
  if (!processTelemetry) {
    const name = process.env.SERVICE_NAME?.trim() || defaultName;
    const identity = { name, version, instanceId: process.env.INSTANCE_ID?.trim() || `${name}-${randomUUID()}` };
    processTelemetry = { identity, telemetry: startTelemetry({ serviceName: name, serviceVersion: version, instanceId: identity.instanceId }) };
  }
  return processTelemetry;
}
