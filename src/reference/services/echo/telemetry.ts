// Imported first by main.ts, so that telemetry (no instrumentations: echo has no store) starts before anything else.
import { startServiceTelemetry } from "../../../platform/telemetry.js";

// SERVICE_VERSION overrides the version, which the instance registers as `Meta.version` in Consul:
// a canary (README, "Traffic management from Consul") runs the same code as another version.
export const service = { name: "echo", version: process.env.SERVICE_VERSION?.trim() || "0.1.0" } as const;

startServiceTelemetry(service.name, service.version);
