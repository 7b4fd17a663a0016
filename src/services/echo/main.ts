import { runService } from "../../server/run-service.js";
import { echoFaultsFromEnv } from "./faults.js";
import { echoRoutes } from "./routes.js";

const faults = echoFaultsFromEnv();
await runService({
  name: process.env.SERVICE_NAME ?? "echo",
  version: "0.1.0",
  start: async (_config, { instanceId }) => ({ routes: echoRoutes(instanceId, faults) }),
});
