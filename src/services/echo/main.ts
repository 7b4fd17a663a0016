import { runService } from "../../server/run-service.js";
import { echoRoutes } from "./routes.js";

await runService({ name: process.env.SERVICE_NAME ?? "echo", version: "0.1.0", routes: echoRoutes });
