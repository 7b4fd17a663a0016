// Imported first by main.ts: telemetry must start before pg and ioredis load, to trace them (storeInstrumentations).
import { startServiceTelemetry } from "../../../platform/telemetry.js";
import { storeInstrumentations } from "../../stores/instrumentations.js";

// SERVICE_VERSION overrides the version, which the instance registers as `Meta.version` in Consul:
// a canary (README, "Traffic management from Consul") runs the same code as another version.
export const service = { name: "user-sync", version: process.env.SERVICE_VERSION?.trim() || "0.1.0" } as const;

startServiceTelemetry(service.name, service.version, { instrumentations: storeInstrumentations() });
