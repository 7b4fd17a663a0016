export { consulAddressFromEnv, createConsulClient, defaultConsulAddress, type ConsulAddress, type ConsulClient, type ConsulTls } from "./consul.js";
export { readEnv, ConfigError, type EnvReader, type HostPort } from "./config.js";
export { startTelemetry, type Telemetry, type TelemetryOptions } from "./telemetry.js";
export { createLogger, type Logger } from "./log.js";
