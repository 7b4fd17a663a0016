export { consulAddressFromEnv, createConsulClient, defaultConsulAddress, type ConsulAddress, type ConsulClient, type ConsulTls } from "./consul.js";
export { readEnv, ConfigError, type EnvReader, type HostPort } from "./config.js";
export { startTelemetry, startServiceTelemetry, type Telemetry, type TelemetryOptions, type TelemetryInstrumentations, type ServiceIdentity } from "./telemetry.js";
export type { OtlpTraceEncoder } from "./otlp-trace-exporter.js";
export { createLogger, type Logger } from "./log.js";
export { meshIdentity, type MeshIdentity, type MeshIdentityOptions, type MeshMaterial } from "./mesh/identity.js";
export { watchIntentions, type IntentionsWatch, type IntentionsWatchOptions } from "./mesh/intentions-watch.js";
export { compileIntentions, type ConsulIntention, type IntentionPolicy, type CallAttributes, type Decision, type DenyReason } from "./mesh/intentions.js";
export { parseSpiffeServiceId, spiffeIdOf, type SpiffeServiceId } from "./mesh/spiffe.js";
