/**
 * MalformedEventError says an event can never be applied as it is (its fields do not parse, or
 * its payload lacks what its type promises): delivering it again cannot help, so the projector
 * moves it to the dead-letter stream at once instead of after its delivery budget (see
 * dead-letter.ts). Projections throw it for payloads they cannot read.
 */
export class MalformedEventError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "MalformedEventError";
  }
}
