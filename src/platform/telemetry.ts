import { NodeSDK } from "@opentelemetry/sdk-node";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-grpc";
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
 * startTelemetry starts the OpenTelemetry Node SDK with OTLP export. Call it before anything
 * else in a service process so that every later import is traced.
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
  });
  sdk.start();
  let stopped: Promise<void> | undefined;
  return { shutdown: () => (stopped ??= sdk.shutdown()) };
}
