export { consulAddressFromEnv, createConsulClient, defaultConsulAddress, type ConsulAddress, type ConsulClient, type ConsulTls } from "./consul.js";
export { readEnv, ConfigError, type EnvReader, type HostPort } from "./config.js";
export { startTelemetry, startServiceTelemetry, type Telemetry, type TelemetryOptions, type TelemetryInstrumentations, type ServiceIdentity } from "./telemetry.js";
export { createLogger, type Logger } from "./log.js";
