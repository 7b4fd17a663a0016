import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { readEnv } from "../../src/platform/config.js";
import { consulAddressFromEnv, createConsulClient, type ConsulClient } from "../../src/platform/consul.js";

/** Where the real servers of `make infra-up` listen (the same variables as scripts/lib.sh). */
const env = readEnv();
export const consulAddress = consulAddressFromEnv(env);
export const jaegerQueryUrl = env.string("JAEGER_QUERY_URL", "http://127.0.0.1:16686");
env.done();

export const consul = createConsulClient(consulAddress);

/**
 * eventually retries `probe` every `intervalMs` until it returns something other than undefined,
 * and fails with `what` and the last value seen after `timeoutMs`.
 */
export async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  { timeoutMs = 20_000, intervalMs = 200 } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${String(lastError)}` : ""}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

const execFileAsync = promisify(execFile);

/** Runs the grpcurl that scripts/setup.sh built (on PATH through scripts/lib.sh). */
export async function grpcurl(...args: string[]): Promise<string> {
  const { stdout } = await execFileAsync("grpcurl", args, { timeout: 15_000 });
  return stdout;
}

/** The status of the gRPC check that Consul (`client`, default the shared agent) runs against `instanceId`, or undefined. */
export async function grpcCheckStatus(serviceName: string, instanceId: string, client: ConsulClient = consul): Promise<string | undefined> {
  const checks = (await client.health.checks(serviceName)) as unknown as { ServiceID: string; Status: string; Type: string }[];
  return checks.find((check) => check.ServiceID === instanceId && check.Type === "grpc")?.Status;
}
