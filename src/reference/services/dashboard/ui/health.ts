import { BreakerState, InstanceHealth, type Instance } from "../../../../../gen/meshkit/dashboard/v1/dashboard_pb.js";

export const healthNames: Record<InstanceHealth, string> = {
  [InstanceHealth.UNSPECIFIED]: "unknown",
  [InstanceHealth.PASSING]: "passing",
  [InstanceHealth.WARNING]: "warning",
  [InstanceHealth.CRITICAL]: "critical",
  [InstanceHealth.DRAINING]: "draining",
};

export const breakerNames: Record<BreakerState, string> = {
  [BreakerState.UNSPECIFIED]: "unknown",
  [BreakerState.CLOSED]: "closed",
  [BreakerState.HALF_OPEN]: "half-open",
  [BreakerState.OPEN]: "open",
};

/** Instances counted by health, in the order the page lists them. */
export function healthCounts(instances: readonly Instance[]): [string, number][] {
  const order = [InstanceHealth.PASSING, InstanceHealth.WARNING, InstanceHealth.CRITICAL, InstanceHealth.DRAINING];
  return order.map((health) => [healthNames[health], instances.filter((instance) => instance.health === health).length] as [string, number]).filter(([, count]) => count > 0);
}

/** A stable colour per service name (for the waterfall's bars). */
export function serviceHue(name: string): number {
  let hash = 0;
  for (let i = 0; i < name.length; i++) hash = (hash * 31 + name.charCodeAt(i)) >>> 0;
  return hash % 360;
}
