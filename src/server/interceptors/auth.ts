import { timingSafeEqual } from "node:crypto";
import { MethodOptions_IdempotencyLevel as Idempotency } from "@bufbuild/protobuf/wkt";
import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { jwtVerify } from "jose";

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
  /** HS256 secret for JWTs whose `scope` claim (space-separated) lists the caller's scopes. */
  jwtSecret?: string;
  /** JWT `iss` and `aud` to require, when set. */
  jwtIssuer?: string;
  jwtAudience?: string;
  /** The scope a command needs. Default `${service full name}:write`, e.g. "meshkit.orders.v1.OrderService:write". */
  requiredScope?: (method: DescMethod) => string;
}

/** Whether `method` changes state: everything the proto does not mark side-effect free. */
export function isCommand(method: DescMethod): boolean {
  return method.idempotency !== Idempotency.NO_SIDE_EFFECTS;
}

/**
 * commandAuth guards command RPCs (those not marked `idempotency_level = NO_SIDE_EFFECTS`) with a
 * bearer token: a static token or an HS256 JWT. No or an unknown token: UNAUTHENTICATED; a valid
 * one without the command's scope: PERMISSION_DENIED. Queries, health and reflection stay open.
 * Tokens are compared in constant time and never logged or used as labels; the caller's name is
 * put in the request's context values for logs.
 */
export function commandAuth(options: AuthOptions): Interceptor {
  const tokens = (options.tokens ?? []).map((entry) => ({ ...entry, bytes: Buffer.from(entry.token) }));
  const secret = options.jwtSecret ? new TextEncoder().encode(options.jwtSecret) : undefined;
  const requiredScope = options.requiredScope ?? ((method: DescMethod) => `${method.parent.typeName}:write`);

  const authenticate = async (token: string): Promise<{ name: string; scopes: readonly string[] } | undefined> => {
    const presented = Buffer.from(token);
    for (const entry of tokens) {
      if (entry.bytes.length === presented.length && timingSafeEqual(entry.bytes, presented)) return entry;
    }
    if (secret && token.split(".").length === 3) {
      try {
        const { payload } = await jwtVerify(token, secret, {
          algorithms: ["HS256"],
          ...(options.jwtIssuer ? { issuer: options.jwtIssuer } : {}),
          ...(options.jwtAudience ? { audience: options.jwtAudience } : {}),
        });
        const scopes = typeof payload.scope === "string" ? payload.scope.split(" ").filter(Boolean) : [];
        return { name: payload.sub ?? "jwt", scopes };
      } catch {
        return undefined; // expired, wrong signature, wrong audience: all "not authenticated"
      }
    }
    return undefined;
  };

  return (next) => async (request) => {
    if (!isCommand(request.method) || /^grpc\.(health|reflection)\./.test(request.service.typeName)) return next(request);
    const header = request.header.get("authorization") ?? "";
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (!match) throw new ConnectError(`${request.method.name} needs a bearer token (authorization: Bearer <token>)`, Code.Unauthenticated);
    const caller = await authenticate(match[1]!);
    if (!caller) throw new ConnectError("the bearer token is not valid", Code.Unauthenticated);
    const scope = requiredScope(request.method);
    if (!caller.scopes.includes(scope)) {
      throw new ConnectError(`caller "${caller.name}" lacks the scope "${scope}" that ${request.method.name} needs`, Code.PermissionDenied);
    }
    return next(request);
  };
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
