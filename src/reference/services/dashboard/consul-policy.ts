import { create } from "@bufbuild/protobuf";
import {
  ChainNodeSchema,
  DiscoveryChainSchema,
  IntentionSchema,
  type DiscoveryChain,
  type Intention,
} from "../../../../gen/meshkit/dashboard/v1/dashboard_pb.js";
import type { ConsulClient } from "../../../platform/consul.js";
import { consulGet } from "./consul-source.js";

/** An intention as `/v1/connect/intentions/match` returns it (the fields read here). */
interface ConsulIntention {
  SourceName: string;
  Action?: string;
  Precedence?: number;
  Description?: string;
  Permissions?: { Action: string; HTTP?: Record<string, unknown> }[] | null;
}

/**
 * intentionsFrom converts Consul's intentions for a destination (already in evaluation order) to
 * what the page shows; an L7 permission's HTTP match is written out as text.
 */
export function intentionsFrom(list: readonly ConsulIntention[] | null | undefined): Intention[] {
  return (list ?? []).map((intention) =>
    create(IntentionSchema, {
      source: intention.SourceName,
      action: intention.Action ?? "",
      precedence: intention.Precedence ?? 0,
      description: intention.Description ?? "",
      permissions: (intention.Permissions ?? []).map((permission) => ({ action: permission.Action, match: httpMatchText(permission.HTTP) })),
    }),
  );
}

/** "PathPrefix /pkg.Svc/ Methods POST Header x-a present": the non-empty parts of an HTTP match. */
export function httpMatchText(http: Record<string, unknown> | undefined): string {
  if (!http) return "any request";
  const parts: string[] = [];
  for (const [key, value] of Object.entries(http)) {
    if (value === undefined || value === null || value === "" || (Array.isArray(value) && value.length === 0)) continue;
    if (key === "Header" && Array.isArray(value)) {
      for (const header of value as Record<string, unknown>[]) {
        const { Name, Invert, ...rest } = header;
        const how = Object.entries(rest).find(([, v]) => v !== undefined && v !== "" && v !== false);
        parts.push(`Header ${String(Name)}${Invert ? " not" : ""} ${how ? `${how[0]} ${String(how[1])}` : "present"}`);
      }
      continue;
    }
    parts.push(`${key} ${Array.isArray(value) ? value.join(",") : String(value)}`);
  }
  return parts.join(" ") || "any request";
}

/** Consul's compiled discovery chain (the fields read here). */
interface ConsulChain {
  Protocol?: string;
  StartNode?: string;
  Nodes?: Record<
    string,
    {
      Type: string;
      Name: string;
      Routes?: { Definition?: { Match?: { HTTP?: Record<string, unknown> } }; NextNode: string }[] | null;
      Splits?: { Weight: number; NextNode: string }[] | null;
      Resolver?: { ConnectTimeout?: string; Default?: boolean; Target?: string; Failover?: { Targets?: string[] } | null };
    }
  >;
  Targets?: Record<string, { ID: string; Service: string; ServiceSubset?: string; Datacenter?: string; Subset?: { Filter?: string } }>;
}

/** chainFrom converts Consul's discovery chain to what the page draws, start node first. */
export function chainFrom(chain: ConsulChain | undefined): DiscoveryChain {
  const nodes = Object.entries(chain?.Nodes ?? {}).map(([id, node]) =>
    create(ChainNodeSchema, {
      id,
      type: node.Type,
      name: node.Name,
      routes: (node.Routes ?? []).map((route) => ({ match: httpMatchText(route.Definition?.Match?.HTTP), nextNode: route.NextNode })),
      splits: (node.Splits ?? []).map((split) => ({ weight: split.Weight, nextNode: split.NextNode })),
      target: node.Resolver?.Target ?? "",
      failoverTargets: node.Resolver?.Failover?.Targets ?? [],
      connectTimeout: node.Resolver?.ConnectTimeout ?? "",
      default: node.Resolver?.Default ?? false,
    }),
  );
  const start = chain?.StartNode ?? "";
  nodes.sort((a, b) => Number(b.id === start) - Number(a.id === start) || a.id.localeCompare(b.id));
  return create(DiscoveryChainSchema, {
    protocol: chain?.Protocol ?? "",
    startNode: start,
    nodes,
    targets: Object.values(chain?.Targets ?? {}).map((target) => ({
      id: target.ID,
      service: target.Service,
      subset: target.ServiceSubset ?? "",
      datacenter: target.Datacenter ?? "",
      filter: target.Subset?.Filter ?? "",
    })),
  });
}

/** The intentions that decide who may call `service`, in Consul's evaluation order. */
export async function readIntentions(consul: ConsulClient, service: string, timeoutMs = 2000): Promise<Intention[]> {
  const answer = await consulGet<Record<string, ConsulIntention[] | null>>(consul, "/connect/intentions/match", { by: "destination", name: service }, timeoutMs);
  return intentionsFrom(answer[service]);
}

/** The routing chain Consul compiled for `service` (its defaults, router, splitter and resolver entries). */
export async function readChain(consul: ConsulClient, service: string, timeoutMs = 2000): Promise<DiscoveryChain> {
  const answer = await consulGet<{ Chain?: ConsulChain }>(consul, `/discovery-chain/${encodeURIComponent(service)}`, {}, timeoutMs);
  return chainFrom(answer.Chain);
}
