/**
 * Reading configuration from environment variables, validated at start with messages that name
 * the variable, what it holds and what was expected, all problems at once.
 *
 * ```ts
 * const env = readEnv();
 * const config = { port: env.port("PORT", 0), consul: env.hostPort("CONSUL_HTTP_ADDR", "127.0.0.1:8500") };
 * env.done(); // throws ConfigError listing every bad variable
 * ```
 */
export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n  - ${problems.join("\n  - ")}`);
    this.name = "ConfigError";
  }
}

export interface HostPort {
  host: string;
  port: number;
}

export interface EnvReader {
  string(name: string, fallback: string): string;
  optionalString(name: string): string | undefined;
  int(name: string, fallback: number, range?: { min?: number; max?: number }): number;
  port(name: string, fallback: number): number;
  /** "host:port", optionally behind "http://". */
  hostPort(name: string, fallback: string): HostPort;
  list(name: string, fallback: readonly string[]): string[];
  /** Records a problem that involves more than one variable, reported by `done()` with the rest. */
  problem(message: string): void;
  /** Throws a ConfigError naming every variable that failed to parse. */
  done(): void;
}

export function readEnv(source: NodeJS.ProcessEnv = process.env): EnvReader {
  const problems: string[] = [];
  const raw = (name: string): string | undefined => {
    const value = source[name]?.trim();
    return value === "" ? undefined : value;
  };

  const int: EnvReader["int"] = (name, fallback, range = {}) => {
    const value = raw(name);
    if (value === undefined) return fallback;
    const parsed = Number(value);
    const { min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER } = range;
    if (!Number.isInteger(parsed) || parsed < min || parsed > max) {
      problems.push(`${name}="${value}" is not an integer in [${min}, ${max}]`);
      return fallback;
    }
    return parsed;
  };

  return {
    string: (name, fallback) => raw(name) ?? fallback,
    optionalString: raw,
    int,
    port: (name, fallback) => int(name, fallback, { min: 0, max: 65_535 }),
    hostPort(name, fallback) {
      const value = raw(name) ?? fallback;
      const match = /^(?:https?:\/\/)?(\[[^\]]+\]|[^:/]+):(\d{1,5})\/?$/.exec(value);
      const port = match ? Number(match[2]) : NaN;
      if (!match || port > 65_535) {
        problems.push(`${name}="${value}" is not host:port (for example 127.0.0.1:8500)`);
        return parseFallback(fallback);
      }
      return { host: match[1]!.replace(/^\[|\]$/g, ""), port };
    },
    list: (name, fallback) =>
      raw(name)
        ?.split(",")
        .map((item) => item.trim())
        .filter(Boolean) ?? [...fallback],
    problem(message) {
      problems.push(message);
    },
    done() {
      if (problems.length > 0) throw new ConfigError(problems);
    },
  };
}

function parseFallback(fallback: string): HostPort {
  const index = fallback.lastIndexOf(":");
  return { host: fallback.slice(0, index).replace(/^https?:\/\//, ""), port: Number(fallback.slice(index + 1)) };
}
