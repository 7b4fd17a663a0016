import { startTelemetry } from "../../src/platform/telemetry.js";

/** The service name of the test process's own spans (the callers' side of traces). */
export const testCallerName = "meshkit-tests";

let started = false;

/**
 * startTestTelemetry starts OpenTelemetry once for the whole mocha process, exporting to the
 * real Jaeger, so that tests can read back traces whose client spans come from here. The SDK
 * stays up until the process exits: a global tracer provider cannot be registered twice.
 */
export function startTestTelemetry(): void {
  if (started) return;
  started = true;
  startTelemetry({ serviceName: testCallerName });
}
