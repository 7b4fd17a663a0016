import assert from "node:assert/strict";
import { connectivityState, type Client } from "@grpc/grpc-js";
import { ChannelReadiness } from "../../src/client/health/channel-readiness.js";

type Channel = ReturnType<Client["getChannel"]>;

/** A channel whose state the test moves by hand; watchers run synchronously, as grpc-js runs them. */
function fakeChannel(initial = connectivityState.IDLE) {
  let state = initial;
  let watchers: { from: number; callback: () => void }[] = [];
  const channel = {
    getConnectivityState: () => state,
    watchConnectivityState: (from: number, _deadline: number, callback: () => void) => void watchers.push({ from, callback }),
  } as unknown as Channel;
  const move = (next: number) => {
    state = next;
    const due = watchers.filter((w) => w.from !== next);
    watchers = watchers.filter((w) => w.from === next);
    for (const watcher of due) watcher.callback();
  };
  return { channel, move, watchers: () => watchers.length };
}

describe("ChannelReadiness: was a failed call ever sent?", () => {
  it("a call that started while connecting and failed before the channel was ever READY was never sent", () => {
    const { channel, move } = fakeChannel();
    const readiness = new ChannelReadiness(channel);
    const mark = readiness.callStarted();
    move(connectivityState.CONNECTING);
    move(connectivityState.TRANSIENT_FAILURE);
    assert.equal(readiness.neverSent(mark), true);
  });

  it("a call that started while connecting may have been sent once the channel became READY, even if it failed again", () => {
    const { channel, move } = fakeChannel(connectivityState.CONNECTING);
    const readiness = new ChannelReadiness(channel);
    const mark = readiness.callStarted();
    move(connectivityState.READY);
    move(connectivityState.IDLE);
    move(connectivityState.CONNECTING);
    move(connectivityState.TRANSIENT_FAILURE);
    assert.equal(readiness.neverSent(mark), false);
  });

  it("a call that started on a READY channel may always have been sent", () => {
    const { channel, move } = fakeChannel(connectivityState.READY);
    const readiness = new ChannelReadiness(channel);
    const mark = readiness.callStarted();
    move(connectivityState.TRANSIENT_FAILURE);
    assert.equal(readiness.neverSent(mark), false);
  });

  it("stops watching once the channel shuts down", () => {
    const { channel, move, watchers } = fakeChannel();
    new ChannelReadiness(channel);
    assert.equal(watchers(), 1);
    move(connectivityState.SHUTDOWN);
    assert.equal(watchers(), 0);
  });
});
