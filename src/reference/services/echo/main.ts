import { service } from "./telemetry.js"; // first: see telemetry.ts
import { runService } from "../../../server/run-service.js";
import { echoFaultsFromEnv } from "./faults.js";
import { echoRoutes } from "./routes.js";

const faults = echoFaultsFromEnv();
await runService({
  name: service.name,
  version: service.version,
  start: async (_config, { instanceId }) => ({ routes: echoRoutes(instanceId, faults) }),
});
