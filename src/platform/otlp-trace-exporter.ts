import { diag } from "@opentelemetry/api";
import { getStringFromEnv } from "@opentelemetry/core";
import { OTLPExporterBase } from "@opentelemetry/otlp-exporter-base";
import { convertLegacyOtlpGrpcOptions, createOtlpGrpcExportDelegate, type OTLPGRPCExporterConfigNode } from "@opentelemetry/otlp-grpc-exporter-base";
import { ProtobufTraceSerializer, TraceExporterMetricsHelper, type IExportTraceServiceResponse, type ISerializer } from "@opentelemetry/otlp-transformer";
import type { ReadableSpan, SpanExporter } from "@opentelemetry/sdk-trace";
import { encodeTraceExportRequest } from "./otlp-trace-encoder.js";

/**
 * OtlpTraceEncoder names what writes the export requests: `meshkit`, our one-pass encoder
 * (otlp-trace-encoder.ts), or `opentelemetry`, @opentelemetry/otlp-transformer's own
 * `ProtobufTraceSerializer`. Both write the same bytes for the version the encoder was checked
 * against; the library's is the way back should ours ever disagree with a newer collector or
 * library.
 */
export type OtlpTraceEncoder = "meshkit" | "opentelemetry";

/** Requests in our encoding (otlp-trace-encoder.ts), responses read by OpenTelemetry's own serializer. */
const meshkitSerializer: ISerializer<ReadableSpan[], IExportTraceServiceResponse> = {
  serializeRequest: (spans) => encodeTraceExportRequest(spans),
  deserializeResponse: (data) => ProtobufTraceSerializer.deserializeResponse(data),
};

/** traceSerializer is the serializer `encoder` names: ours, or the library's own object. */
export function traceSerializer(encoder: OtlpTraceEncoder): ISerializer<ReadableSpan[], IExportTraceServiceResponse> {
  return encoder === "opentelemetry" ? ProtobufTraceSerializer : meshkitSerializer;
}

/**
 * otlpTraceEncoderFromEnv reads `MESHKIT_OTLP_TRACE_ENCODER` (`meshkit` or `opentelemetry`,
 * case and surrounding spaces ignored, in the manner of the `OTEL_*` variables). Unset or empty:
 * `meshkit`. Any other value: `meshkit`, with a warning on OpenTelemetry's diagnostic logger, as
 * the SDK treats a value it does not know.
 */
export function otlpTraceEncoderFromEnv(): OtlpTraceEncoder {
  const value = getStringFromEnv("MESHKIT_OTLP_TRACE_ENCODER")?.trim().toLowerCase();
  if (value === undefined || value === "meshkit") return "meshkit";
  if (value === "opentelemetry") return "opentelemetry";
  diag.warn(`unknown MESHKIT_OTLP_TRACE_ENCODER "${value}": expected meshkit or opentelemetry; using meshkit`);
  return "meshkit";
}

/** OtlpGrpcTraceExporterConfig is the OTLP/gRPC exporter's configuration, and which encoder writes the requests. */
export interface OtlpGrpcTraceExporterConfig extends OTLPGRPCExporterConfigNode {
  /** Default: `otlpTraceEncoderFromEnv()`, i.e. `MESHKIT_OTLP_TRACE_ENCODER`, else `meshkit`. */
  encoder?: OtlpTraceEncoder;
}

/**
 * OtlpGrpcTraceExporter is @opentelemetry/exporter-trace-otlp-grpc's `OTLPTraceExporter` built
 * from the same parts (its gRPC transport, retries, configuration and environment variables,
 * and self-observability), except that requests are written by `encodeTraceExportRequest`: the
 * same bytes in under half the CPU (docs/benchmarks.md). With `encoder: "opentelemetry"` (or
 * `MESHKIT_OTLP_TRACE_ENCODER=opentelemetry`) the library's own serializer writes them.
 *
 * ```ts
 * const exporter = new OtlpGrpcTraceExporter({ url: "http://127.0.0.1:4317", encoder: "opentelemetry" });
 * ```
 */
export class OtlpGrpcTraceExporter extends OTLPExporterBase<ReadableSpan[]> implements SpanExporter {
  /** Which encoder writes this exporter's requests. */
  readonly encoder: OtlpTraceEncoder;

  constructor({ encoder = otlpTraceEncoderFromEnv(), ...config }: OtlpGrpcTraceExporterConfig = {}) {
    super(
      createOtlpGrpcExportDelegate(
        convertLegacyOtlpGrpcOptions(config, "TRACES"),
        traceSerializer(encoder),
        "otlp_grpc_span_exporter",
        TraceExporterMetricsHelper,
        config.selfObsMeterProvider,
        "TraceExportService",
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
      ),
    );
    this.encoder = encoder;
  }
}
