import type { ConsulClient } from "../platform/consul.js";

/** ConsulRegistrationOptions describe one service instance to Consul. */
export interface ConsulRegistrationOptions {
  /** Service name, as clients look it up (for example "echo"). */
  name: string;
  /** Unique instance id. */
  id: string;
  /** Address other processes (and Consul's check) reach the instance at. */
  address: string;
  port: number;
  tags?: string[];
  /** Free-form metadata, for example version and protocols. */
  meta?: Record<string, string>;
  /** How often Consul runs the gRPC health check. Default "5s". */
  checkInterval?: string;
  /** How long one check may take before it counts as failed. Default "2s". */
  checkTimeout?: string;
  /**
   * The instance serves TLS: Consul's check connects with TLS. With the agent's
   * `enable_agent_tls_for_checks` on, the check trusts the agent's CA and presents the agent's
   * certificate, so it passes against an instance that requires client certificates
   * (deploy/consul/checks-mtls.hcl); otherwise it trusts the system roots and presents none.
   */
  checkUseTls?: boolean;
  /**
   * The name the check verifies the instance's certificate against. Default `address`, the name
   * the mesh client verifies too: left empty, an agent with TLS for checks would expect its own
   * node name on every instance's certificate.
   */
  checkTlsServerName?: string;
  /** Skip verifying the instance's certificate in the check (self-signed dev setups). */
  checkTlsSkipVerify?: boolean;
  /**
   * How long an instance may stay critical before Consul removes it: the safety net for an
   * instance that died without deregistering. Default "1m", Consul's smallest useful value
   * (its reaper runs every 30 s).
   */
  deregisterCriticalAfter?: string;
  /**
   * The instance speaks Consul's service mesh itself (`Connect: { Native: true }`): it then
   * appears in `/v1/health/connect/<name>`, the mesh view that mesh clients and Consul's proxies
   * discover through.
   */
  connectNative?: boolean;
}

export interface ConsulRegistration {
  readonly serviceId: string;
  /** Removes the instance from Consul and stops re-registering it. Safe to call more than once. */
  deregister(): Promise<void>;
}

/** How often an instance checks that its agent still knows it. */
const defaultReregisterIntervalMs = 10_000;

/**
 * registerInConsul registers the instance with a gRPC health check that the Consul agent itself
 * runs against `grpc.health.v1.Health/Check` at address:port, so a hung or dead instance turns
 * critical without the instance's help. It registers again by itself when the agent forgets it
 * (an agent restarted without its data), checking every `reregisterIntervalMs` (default 10 s).
 */
export async function registerInConsul(
  consul: ConsulClient,
  options: ConsulRegistrationOptions,
  { reregisterIntervalMs = defaultReregisterIntervalMs, onReregistered }: { reregisterIntervalMs?: number; onReregistered?: () => void } = {},
): Promise<ConsulRegistration> {
  const register = () => consul.agent.service.register({
    name: options.name,
    id: options.id,
    address: options.address,
    port: options.port,
    tags: options.tags ?? [],
    meta: options.meta ?? {},
    // The package's typings require `sidecarservice` in `connect`; a native service has none.
    ...(options.connectNative ? { connect: { native: true, sidecarservice: undefined as unknown as Record<string, never> } } : {}),
    check: {
      name: `gRPC health of ${options.id}`,
      grpc: `${options.address}:${options.port}`,
      grpcusetls: Boolean(options.checkUseTls),
      ...(options.checkUseTls ? { tlsservername: options.checkTlsServerName ?? options.address } : {}),
      ...(options.checkTlsSkipVerify ? { tlsskipverify: true } : {}),
      interval: options.checkInterval ?? "5s",
      timeout: options.checkTimeout ?? "2s",
      deregistercriticalserviceafter: options.deregisterCriticalAfter ?? "1m",
    },
  });
  await register();

  // A restarted agent (or one that lost its state) has forgotten the instance, and Consul does
  // not tell: look every interval, and register again when it is missing. While the agent is
  // unreachable the lookups fail quietly and the next one tries again.
  let stopped = false;
  let inFlight: Promise<void> | undefined;
  const watchdog = setInterval(() => {
    if (inFlight || stopped) return;
    inFlight = consul.agent.service
      .list()
      .then(async (services: Record<string, unknown>) => {
        // deregister() may have run while the lookup was out: registering now would bring back
        // an instance that is shutting down (until Consul reaps it, a minute after it dies).
        if (services[options.id] || stopped) return;
        await register();
        onReregistered?.();
      })
      .catch(() => undefined)
      .finally(() => (inFlight = undefined));
  }, reregisterIntervalMs);
  watchdog.unref();

  let deregistered: Promise<void> | undefined;
  return {
    serviceId: options.id,
    deregister: () =>
      (deregistered ??= (async () => {
        stopped = true;
        clearInterval(watchdog);
        // A registration already sent must land before the deregistration, not after it.
        await inFlight;
        await consul.agent.service.deregister(options.id).catch((error: unknown) => {
          // Already gone (the agent forgot it, or it was never re-registered): that is the goal.
          if ((error as { response?: { statusCode?: number } }).response?.statusCode !== 404) throw error;
        });
      })()),
  };
}
