// Imported first by main.ts: telemetry must start before pg and ioredis load, to trace them (storeInstrumentations).
import { startServiceTelemetry } from "../../../platform/telemetry.js";
import { storeInstrumentations } from "../../stores/instrumentations.js";

export const service = { name: "status", version: "0.1.0" } as const;

startServiceTelemetry(service.name, service.version, { instrumentations: storeInstrumentations() });
