import * as grpc from "@grpc/grpc-js";

/**
 * MeshAddressBook tells which service Consul lists at an address that a `consul:///<service>?mesh=true`
 * channel resolved: the service itself, or another one its discovery chain redirected, split or
 * failed over to. The channel's resolver writes it; `meshChannelCredentials` for `<service>`
 * reads it when a server's SPIFFE ID names a service other than `<service>`, and accepts it only
 * when Consul lists that service at the very address connected to (as Envoy expects each of a
 * chain's targets to prove its own service's identity). Process-wide, as grpc-js's resolver
 * registry is: the resolver and the credentials meet only through the service name.
 */
export class MeshAddressBook {
  /** By channel service: each resolver's current address (grpc-js's `host:port` form, `addressKey`) -> service. */
  readonly #books = new Map<string, Map<object, ReadonlyMap<string, string>>>();

  /** Replaces what `owner` (one resolver) lists for channels to `channelService`. */
  publish(channelService: string, owner: object, entries: ReadonlyMap<string, string>): void {
    let owners = this.#books.get(channelService);
    if (!owners) this.#books.set(channelService, (owners = new Map()));
    owners.set(owner, entries);
  }

  /** Removes what `owner` listed (its channel closed). */
  withdraw(channelService: string, owner: object): void {
    const owners = this.#books.get(channelService);
    if (!owners?.delete(owner)) return;
    if (owners.size === 0) this.#books.delete(channelService);
  }

  /** The service Consul lists at `address`:`port` for channels to `channelService`, if any. */
  serviceAt(channelService: string, address: string, port: number): string | undefined {
    const key = grpc.experimental.subchannelAddressToString({ host: address, port });
    for (const entries of this.#books.get(channelService)?.values() ?? []) {
      const service = entries.get(key);
      if (service !== undefined) return service;
    }
    return undefined;
  }
}

/** The book `meshChannelCredentials` and the consul: resolver share. */
export const meshAddressBook = new MeshAddressBook();
