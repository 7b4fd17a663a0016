import { Code, ConnectError } from "@connectrpc/connect";
import { setTimeout as sleep } from "node:timers/promises";

/**
 * Test-only fault injection for the echo service, off unless its environment asks:
 * `ECHO_DELAY_MS` delays every answer; with `ECHO_FAULT_SIGNALS=1`, SIGUSR1 makes the instance
 * answer UNAVAILABLE and SIGUSR2 heals it. Chaos and resilience tests use these to make one
 * real process slow or failing without touching the others.
 */
export interface EchoFaults {
  /** Waits the injected delay, then throws if the instance is set to fail. */
  apply(signal: AbortSignal): Promise<void>;
}

export function echoFaultsFromEnv(env: NodeJS.ProcessEnv = process.env): EchoFaults | undefined {
  const delayMs = Number(env.ECHO_DELAY_MS ?? 0);
  const signals = env.ECHO_FAULT_SIGNALS === "1";
  if (!delayMs && !signals) return undefined;
  let failing = false;
  if (signals) {
    process.on("SIGUSR1", () => (failing = true));
    process.on("SIGUSR2", () => (failing = false));
  }
  return {
    async apply(signal) {
      if (delayMs > 0) await sleep(delayMs, undefined, { signal });
      if (failing) throw new ConnectError("injected fault: this instance is failing", Code.Unavailable);
    },
  };
}
