import { timingSafeEqual } from "node:crypto";
import { MethodOptions_IdempotencyLevel as Idempotency } from "@bufbuild/protobuf/wkt";
import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { errors as joseErrors, jwtVerify } from "jose";
import { Counter, register as defaultRegistry, type Registry } from "prom-client";

/** A caller known by a static bearer token. */
export interface StaticToken {
  /** Who the caller is, for logs (never the token itself). */
  name: string;
  token: string;
  scopes: readonly string[];
}

/** AuthOptions configure `commandAuth`. Give static tokens, a JWT secret, or both. */
export interface AuthOptions {
  tokens?: readonly StaticToken[];
  /**
   * HS256 secret for JWTs whose `scope` claim (space-separated) lists the caller's scopes. The
   * algorithm is pinned to HS256 (a token naming another, "none" included, is refused) and every
   * JWT must carry `exp`.
   */
  jwtSecret?: string;
  /** JWT `iss` and `aud` to require, when set. Default: not checked. */
  jwtIssuer?: string;
  jwtAudience?: string;
  /** Clock skew allowed when checking `exp` and `nbf`, in seconds. Default 30. */
  jwtClockToleranceSeconds?: number;
  /** The scope a command needs. Default `${service full name}:write`, e.g. "meshkit.orders.v1.OrderService:write". */
  requiredScope?: (method: DescMethod) => string;
  /**
   * Queries that reveal personal data, by method (`UserSyncService.method.getUser`): they need
   * `${service full name}:read` (or the service's `:write`, which includes reading). Other queries
   * stay open. Default none.
   */
  personalDataQueries?: readonly DescMethod[];
  /** Where `meshkit_server_auth_failures_total` is registered. Default prom-client's registry. */
  metrics?: Registry;
}

/**
 * Why a call was refused, the `reason` label of `meshkit_server_auth_failures_total`: a small,
 * fixed set, never the token.
 */
export type AuthFailureReason =
  | "missing_token"
  | "unknown_token"
  | "malformed_token"
  | "bad_signature"
  | "algorithm_not_allowed"
  | "expired"
  | "missing_exp"
  | "not_yet_valid"
  | "wrong_audience"
  | "wrong_issuer"
  | "invalid_claims"
  | "insufficient_scope";

const failureCounters = new WeakMap<Registry, Counter<"service" | "reason">>();

function authFailureCounter(registry: Registry): Counter<"service" | "reason"> {
  let counter = failureCounters.get(registry);
  if (!counter) {
    counter = new Counter({
      name: "meshkit_server_auth_failures_total",
      help: "Calls refused by authentication (UNAUTHENTICATED) or authorization (PERMISSION_DENIED), by RPC service and reason.",
      labelNames: ["service", "reason"],
      registers: [registry],
    });
    failureCounters.set(registry, counter);
  }
  return counter;
}

/** The reason a JWT was refused, from jose's error. */
function jwtFailureReason(error: unknown): AuthFailureReason {
  if (error instanceof joseErrors.JWTExpired) return "expired";
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    if (error.claim === "exp") return "missing_exp";
    if (error.claim === "aud") return "wrong_audience";
    if (error.claim === "iss") return "wrong_issuer";
    if (error.claim === "nbf" || error.claim === "iat") return "not_yet_valid";
    return "invalid_claims";
  }
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return "bad_signature";
  if (error instanceof joseErrors.JOSEAlgNotAllowed || error instanceof joseErrors.JOSENotSupported) return "algorithm_not_allowed";
  return "malformed_token";
}

/** Whether `method` changes state: everything the proto does not mark side-effect free. */
export function isCommand(method: DescMethod): boolean {
  return method.idempotency !== Idempotency.NO_SIDE_EFFECTS;
}

/**
 * commandAuth guards command RPCs (those not marked `idempotency_level = NO_SIDE_EFFECTS`) with a
 * bearer token: a static token or an HS256 JWT (with `exp`, checked with `jwtClockToleranceSeconds`
 * of skew; `iss` and `aud` when configured). No or an unknown token: UNAUTHENTICATED; a valid one
 * without the command's scope: PERMISSION_DENIED. The `personalDataQueries` need the service's
 * read scope the same way; other queries, health and reflection stay open. Every refusal counts in
 * `meshkit_server_auth_failures_total{service,reason}`. Tokens are compared in constant time and
 * never logged or used as labels.
 */
export function commandAuth(options: AuthOptions): Interceptor {
  const tokens = (options.tokens ?? []).map((entry) => ({ ...entry, bytes: Buffer.from(entry.token) }));
  const secret = options.jwtSecret ? new TextEncoder().encode(options.jwtSecret) : undefined;
  const requiredScope = options.requiredScope ?? ((method: DescMethod) => `${method.parent.typeName}:write`);
  const personal = new Set((options.personalDataQueries ?? []).map(methodKey));
  const failures = authFailureCounter(options.metrics ?? defaultRegistry);

  type Authentication = { caller: { name: string; scopes: readonly string[] } } | { refused: AuthFailureReason };
  const authenticate = async (token: string): Promise<Authentication> => {
    const presented = Buffer.from(token);
    for (const entry of tokens) {
      if (entry.bytes.length === presented.length && timingSafeEqual(entry.bytes, presented)) return { caller: entry };
    }
    if (!secret || token.split(".").length !== 3) return { refused: "unknown_token" };
    try {
      const { payload } = await jwtVerify(token, secret, {
        algorithms: ["HS256"],
        requiredClaims: ["exp"],
        clockTolerance: options.jwtClockToleranceSeconds ?? 30,
        ...(options.jwtIssuer ? { issuer: options.jwtIssuer } : {}),
        ...(options.jwtAudience ? { audience: options.jwtAudience } : {}),
      });
      const scopes = typeof payload.scope === "string" ? payload.scope.split(" ").filter(Boolean) : [];
      return { caller: { name: payload.sub ?? "jwt", scopes } };
    } catch (error) {
      return { refused: jwtFailureReason(error) };
    }
  };

  return (next) => async (request) => {
    if (/^grpc\.(health|reflection)\./.test(request.service.typeName)) return next(request);
    const command = isCommand(request.method);
    if (!command && !personal.has(methodKey(request.method))) return next(request);
    const refuse = (reason: AuthFailureReason, message: string, code: Code) => {
      failures.inc({ service: request.service.typeName, reason });
      return new ConnectError(message, code);
    };
    const header = request.header.get("authorization") ?? "";
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (!match) throw refuse("missing_token", `${request.method.name} needs a bearer token (authorization: Bearer <token>)`, Code.Unauthenticated);
    const outcome = await authenticate(match[1]!);
    if ("refused" in outcome) throw refuse(outcome.refused, `the bearer token is not valid (${outcome.refused.replaceAll("_", " ")})`, Code.Unauthenticated);
    const { caller } = outcome;
    const writeScope = requiredScope(request.method);
    const scope = command ? writeScope : `${request.service.typeName}:read`;
    if (!caller.scopes.includes(scope) && !(!command && caller.scopes.includes(`${request.service.typeName}:write`))) {
      throw refuse("insufficient_scope", `caller "${caller.name}" lacks the scope "${scope}" that ${request.method.name} needs`, Code.PermissionDenied);
    }
    return next(request);
  };
}

function methodKey(method: DescMethod): string {
  return `${method.parent.typeName}/${method.name}`;
}

/**
 * parseStaticTokens reads `AUTH_TOKENS`: entries separated by commas, each `name:token:scope scope`
 * (scopes separated by spaces, may be empty).
 */
export function parseStaticTokens(value: string | undefined): StaticToken[] {
  if (!value) return [];
  return value
    .split(",")
    .map((entry) => entry.trim())
    .filter(Boolean)
    .map((entry) => {
      // Scopes may contain ":" themselves (service:write): split on the first two only.
      const [name, token, ...rest] = entry.split(":");
      const scopes = rest.join(":");
      if (!name || !token) throw new Error("AUTH_TOKENS entries are name:token:scopes (the token may not be empty)");
      return { name, token, scopes: scopes.split(" ").filter(Boolean) };
    });
}

/** A client interceptor that sends `token` as a bearer token on every call. */
export function bearerToken(token: string): Interceptor {
  return (next) => (request) => {
    request.header.set("authorization", `Bearer ${token}`);
    return next(request);
  };
}
