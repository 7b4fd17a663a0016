import { IORedisInstrumentation } from "@opentelemetry/instrumentation-ioredis";
import { PgInstrumentation } from "@opentelemetry/instrumentation-pg";
import type { TelemetryInstrumentations } from "../../platform/telemetry.js";

/**
 * storeInstrumentations are the OpenTelemetry instrumentations of the reference system's stores:
 * PostgreSQL queries and Redis commands made inside a traced call become its child spans
 * (`requireParentSpan`, so background polling such as the outbox relay's does not flood the trace
 * store). They patch pg and ioredis when those load through `require` after telemetry started
 * (see require-instrumented.ts).
 */
export function storeInstrumentations(): TelemetryInstrumentations {
  return [new PgInstrumentation({ requireParentSpan: true }), new IORedisInstrumentation({ requireParentSpan: true })];
}
