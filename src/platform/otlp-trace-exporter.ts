import { OTLPExporterBase } from "@opentelemetry/otlp-exporter-base";
import { convertLegacyOtlpGrpcOptions, createOtlpGrpcExportDelegate, type OTLPGRPCExporterConfigNode } from "@opentelemetry/otlp-grpc-exporter-base";
import { ProtobufTraceSerializer, TraceExporterMetricsHelper, type IExportTraceServiceResponse, type ISerializer } from "@opentelemetry/otlp-transformer";
import type { ReadableSpan, SpanExporter } from "@opentelemetry/sdk-trace";
import { encodeTraceExportRequest } from "./otlp-trace-encoder.js";

/** Requests in our encoding (otlp-trace-encoder.ts), responses read by OpenTelemetry's own serializer. */
const serializer: ISerializer<ReadableSpan[], IExportTraceServiceResponse> = {
  serializeRequest: (spans) => encodeTraceExportRequest(spans),
  deserializeResponse: (data) => ProtobufTraceSerializer.deserializeResponse(data),
};

/**
 * OtlpGrpcTraceExporter is @opentelemetry/exporter-trace-otlp-grpc's `OTLPTraceExporter` built
 * from the same parts (its gRPC transport, retries, configuration and environment variables,
 * and self-observability), except that requests are written by `encodeTraceExportRequest`: the
 * same bytes in under half the CPU (docs/benchmarks.md).
 */
export class OtlpGrpcTraceExporter extends OTLPExporterBase<ReadableSpan[]> implements SpanExporter {
  constructor(config: OTLPGRPCExporterConfigNode = {}) {
    super(
      createOtlpGrpcExportDelegate(
        convertLegacyOtlpGrpcOptions(config, "TRACES"),
        serializer,
        "otlp_grpc_span_exporter",
        TraceExporterMetricsHelper,
        config.selfObsMeterProvider,
        "TraceExportService",
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
      ),
    );
  }
}
