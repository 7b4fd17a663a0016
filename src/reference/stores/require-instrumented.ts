import { createRequire } from "node:module";

/**
 * requireInstrumented loads a CommonJS package through `require`, which OpenTelemetry's
 * instrumentations hook (require-in-the-middle): pg, pg-pool and ioredis loaded this way, after
 * telemetry started, produce spans. A static ESM `import` of them would bypass the hook, and
 * would also run before any code of the importing module could start telemetry.
 */
export const requireInstrumented = createRequire(import.meta.url);
