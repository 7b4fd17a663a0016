import { createRequire } from "node:module";
import * as grpc from "@grpc/grpc-js";

/**
 * The @grpc/grpc-js releases this entry is tested with: 1.14.7 up to, not including, 1.15.0
 * (the peerDependency range `~1.14.7`). The resolver and load-balancer plug-in API lives in
 * `grpc.experimental` and may change in a minor release (it was reworked in grpc-node PR #2925:
 * resolver listeners became one function taking `StatusOr` values), so a version outside the
 * range is refused rather than half working.
 */
export const supportedGrpcJs = { min: [1, 14, 7], below: [1, 15, 0], range: "~1.14.7" } as const;

/**
 * checkGrpcJsVersion throws an Error that names the supported range when `version` (as in
 * grpc-js's package.json) is outside it. Compared by hand: three numbers need no semver library,
 * and a prerelease suffix is refused like any version not tested.
 */
export function checkGrpcJsVersion(version: string | undefined): void {
  const parts = /^(\d+)\.(\d+)\.(\d+)$/.exec(version ?? "")?.slice(1).map(Number);
  const compare = (a: readonly number[], b: readonly number[]) => a[0]! - b[0]! || a[1]! - b[1]! || a[2]! - b[2]!;
  if (!parts || compare(parts, supportedGrpcJs.min) < 0 || compare(parts, supportedGrpcJs.below) >= 0) {
    throw new Error(
      `meshkit/grpc-js works with @grpc/grpc-js ${supportedGrpcJs.range} (its experimental resolver API changes between minor releases); ` +
        `this application loads @grpc/grpc-js ${version ?? "of unknown version"}: install @grpc/grpc-js@"${supportedGrpcJs.range}"`,
    );
  }
}

const packageRequire = createRequire(import.meta.url);

/**
 * assertSupportedGrpcJs checks the @grpc/grpc-js this package loads (the application's copy, a
 * peer dependency) before anything is registered with its experimental API.
 */
export function assertSupportedGrpcJs(): void {
  checkGrpcJsVersion((packageRequire("@grpc/grpc-js/package.json") as { version?: string }).version);
  if (typeof grpc.experimental?.registerResolver !== "function" || typeof grpc.experimental?.registerLoadBalancerType !== "function") {
    throw new Error("meshkit/grpc-js: this @grpc/grpc-js has no experimental.registerResolver / registerLoadBalancerType");
  }
}
