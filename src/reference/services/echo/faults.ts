import { Code, ConnectError } from "@connectrpc/connect";
import { setTimeout as sleep } from "node:timers/promises";

/**
 * Test-only fault injection for the echo service, off unless its environment asks:
 * `ECHO_DELAY_MS` delays every answer; with `ECHO_FAULT_SIGNALS=1`, SIGUSR1 makes the instance
 * answer UNAVAILABLE, SIGHUP makes it slow (each answer `ECHO_SLOW_MS` later, default 2000), and
 * SIGUSR2 heals both. Chaos and resilience tests and benchmarks use these to make one real
 * process slow or failing, for a while, without touching the others.
 */
export interface EchoFaults {
  /** Waits the injected delay, then throws if the instance is set to fail. */
  apply(signal: AbortSignal): Promise<void>;
}

export function echoFaultsFromEnv(env: NodeJS.ProcessEnv = process.env): EchoFaults | undefined {
  const delayMs = Number(env.ECHO_DELAY_MS ?? 0);
  const signals = env.ECHO_FAULT_SIGNALS === "1";
  if (!delayMs && !signals) return undefined;
  const slowMs = Number(env.ECHO_SLOW_MS ?? 2000);
  let failing = false;
  let slow = false;
  if (signals) {
    process.on("SIGUSR1", () => (failing = true));
    process.on("SIGHUP", () => (slow = true));
    process.on("SIGUSR2", () => {
      failing = false;
      slow = false;
    });
  }
  return {
    async apply(signal) {
      const wait = delayMs + (slow ? slowMs : 0);
      // A call that ends while waiting (its deadline passed, or the caller cancelled) ends with the
      // reason connect gives (DEADLINE_EXCEEDED, CANCELED), not as an unexpected error (INTERNAL).
      if (wait > 0) await sleep(wait, undefined, { signal }).catch(() => Promise.reject(ConnectError.from(signal.reason, Code.Canceled)));
      if (failing) throw new ConnectError("injected fault: this instance is failing", Code.Unavailable);
    },
  };
}
