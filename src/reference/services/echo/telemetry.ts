// Imported first by main.ts, so that telemetry (no instrumentations: echo has no store) starts before anything else.
import { startServiceTelemetry } from "../../../platform/telemetry.js";

export const service = { name: "echo", version: "0.1.0" } as const;

startServiceTelemetry(service.name, service.version);
