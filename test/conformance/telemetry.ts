import { NodeSDK } from "@opentelemetry/sdk-node";
import type { ReadableSpan, SpanProcessor } from "@opentelemetry/sdk-trace";

/**
 * startCountingTelemetry starts OpenTelemetry as a service does (Node SDK, W3C trace context,
 * every span sampled), so that the tracing interceptors run their real path under the suite,
 * but counts the finished spans instead of exporting them: the conformance run needs no Jaeger.
 * `report` writes the count to stderr (the runner shows it with -v; stdout is its channel).
 */
export function startCountingTelemetry(serviceName: string): { report: () => void } {
  let ended = 0;
  let failed = 0;
  const counting: SpanProcessor = {
    onStart: () => undefined,
    onEnd: (span: ReadableSpan) => {
      ended++;
      if (span.status.code === 2) failed++; // SpanStatusCode.ERROR
    },
    forceFlush: () => Promise.resolve(),
    shutdown: () => Promise.resolve(),
  };
  const sdk = new NodeSDK({ serviceName, spanProcessors: [counting], instrumentations: [] });
  sdk.start();
  return { report: () => process.stderr.write(`${serviceName}: ${ended} spans ended (${failed} with status ERROR)\n`) };
}
