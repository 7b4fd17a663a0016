import { connectivityState, type Client } from "@grpc/grpc-js";

type Channel = ReturnType<Client["getChannel"]>;

/** A call's mark from `ChannelReadiness.callStarted`: `sentPossible` when the channel was READY. */
export type ReadinessMark = number;
const sentPossible: ReadinessMark = -1;

/**
 * ChannelReadiness tells, when a call on a grpc-js channel fails, whether the request can have
 * left this process. grpc-js puts a call on an HTTP/2 stream only over a READY connection; a
 * call made while the channel is connecting (or failing to connect) waits in its pick queue and,
 * when the connection attempt fails, ends with UNAVAILABLE "No connection established", never
 * sent. grpc-js keeps that fact to itself (its internal `progress` field is removed before the
 * status reaches a caller), so this watches the channel's state: a call that started while the
 * channel was not READY, and saw it never become READY before failing, was never sent.
 *
 * grpc-js runs state watchers synchronously inside its state change, before any queued call can
 * be given a stream, so the count below is current whenever a failure is reported.
 */
export class ChannelReadiness {
  #readyEntries = 0;
  #ready = false;

  constructor(private readonly channel: Channel) {
    this.#watch();
  }

  #watch = (): void => {
    const state = this.channel.getConnectivityState(false);
    const ready = state === connectivityState.READY;
    if (ready && !this.#ready) this.#readyEntries++;
    this.#ready = ready;
    if (state !== connectivityState.SHUTDOWN) this.channel.watchConnectivityState(state, Infinity, this.#watch);
  };

  /** Whether the channel is connected (READY) now. */
  get ready(): boolean {
    return this.#ready;
  }

  /** The mark to keep for a call that starts now. */
  callStarted(): ReadinessMark {
    return this.#ready ? sentPossible : this.#readyEntries;
  }

  /** Whether a call that started with `mark` and has failed cannot have been sent. */
  neverSent(mark: ReadinessMark): boolean {
    return mark !== sentPossible && mark === this.#readyEntries;
  }
}
