export { startServerHost, type ServerHost, type ServerHostOptions } from "./host.js";
export { runService, type ServiceDefinition } from "./run-service.js";
export { registerInConsul, type ConsulRegistration, type ConsulRegistrationOptions } from "./registration.js";
export { createHealthStatus, healthRoutes, ServingStatus, type HealthStatus } from "./health.js";
export { reflectionRoutes } from "./reflection.js";
export { serverTracing } from "./interceptors/tracing.js";
export { serverDeadline } from "./interceptors/deadline.js";
