/**
 * The OpenTelemetry set-up of the tracing peer of `make bench-calls` (bench/support/echo-server.ts,
 * kind `grpc-js-otel`): what a Node team runs instead of meshkit's host, a bare @grpc/grpc-js
 * server traced by `@opentelemetry/instrumentation-grpc` under the OpenTelemetry Node SDK. It is
 * loaded before the server with `node --import`, as OpenTelemetry's guide for ESM applications
 * has it: the loader hook first (so that the server's own `import` of @grpc/grpc-js is
 * instrumented), then the SDK.
 *
 * The SDK is configured from the environment, as such a team configures it, with these defaults
 * where a variable is unset:
 *   - every span sampled (`OTEL_TRACES_SAMPLER=always_on`), as the host's row samples them;
 *   - exported over OTLP/gRPC (`OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=grpc`), the same transport the
 *     host's exporter uses, to `OTEL_EXPORTER_OTLP_ENDPOINT` (scripts/lib.sh: the running Jaeger
 *     on 127.0.0.1:4317; `localhost` may resolve to ::1, where Jaeger does not listen);
 *   - no OTLP metrics or logs (`OTEL_METRICS_EXPORTER=none`, `OTEL_LOGS_EXPORTER=none`): left
 *     unset, the SDK starts exporters for both, aimed at a collector that takes traces only (the
 *     host starts neither);
 *   - the SDK's own batching (BatchSpanProcessor from `OTEL_BSP_*`) and resource detectors.
 */
import { register } from "node:module";
import { GrpcInstrumentation } from "@opentelemetry/instrumentation-grpc";
import { NodeSDK } from "@opentelemetry/sdk-node";

const defaults: Record<string, string> = {
  OTEL_SERVICE_NAME: "echo-calls-bench-grpc-js-otel",
  OTEL_TRACES_SAMPLER: "always_on",
  OTEL_TRACES_EXPORTER: "otlp",
  OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "grpc",
  OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4317",
  OTEL_METRICS_EXPORTER: "none",
  OTEL_LOGS_EXPORTER: "none",
};
for (const [name, value] of Object.entries(defaults)) process.env[name] ??= value;

register("@opentelemetry/instrumentation/hook.mjs", import.meta.url);
new NodeSDK({ instrumentations: [new GrpcInstrumentation()] }).start();
