import type { DescMethod } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";

export type Observer = { observe(value: number): void };

/**
 * CodeObservers caches the labelled histogram child per method and code, so that recording a
 * call does not build label strings on the hot path.
 */
export class CodeObservers {
  #byMethod = new Map<DescMethod, Observer[]>();

  constructor(private readonly child: (method: DescMethod, code: string) => Observer) {}

  observe(method: DescMethod, code: Code | 0, seconds: number): void {
    let children = this.#byMethod.get(method);
    if (!children) this.#byMethod.set(method, (children = []));
    let child = children[code];
    if (!child) child = children[code] = this.child(method, codeName(code));
    child.observe(seconds);
  }
}

/** "OK", "UNAVAILABLE", ...: gRPC's own spelling, as dashboards expect. */
export function codeName(code: Code | 0): string {
  if (code === 0) return "OK";
  return Code[code]!.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}
