// Imported first by main.ts: telemetry must start before pg and ioredis load, to trace them.
import { startServiceTelemetry } from "../../../platform/telemetry.js";

export const service = { name: "orders", version: "0.1.0" } as const;

startServiceTelemetry(service.name, service.version);
