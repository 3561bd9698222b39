/**
 * The heartbeat checks each client in the slot of its next ping or timeout:
 * pings go out spread as the clients connected, a few per slot, rather than
 * every due client at once, and a timeout is kept to within a slot.
 */

import assert from "node:assert/strict";
import { ConnectionManager, type ConnectionManagerOptions } from "../chat/connection_manager.ts";
import { Metrics } from "../chat/metrics.ts";
import { FakeClock, FakeScheduler, FakeSocket, settle } from "./helpers/fakes.ts";

const INTERVAL_MS = 10_000;
const TIMEOUT_MS = 30_000;

/** A manager on fake time with the default heartbeat; `open` connects a heartbeat client. */
function harness(options: ConnectionManagerOptions = {}) {
  const clock = new FakeClock();
  const scheduler = new FakeScheduler(clock);
  const manager = new ConnectionManager({
    clock,
    scheduler,
    heartbeatIntervalMs: INTERVAL_MS,
    heartbeatTimeoutMs: TIMEOUT_MS,
    maxConnectionsPerIp: 1000,
    rateLimitBurst: 1000,
    ...options,
  });
  const open = async (username: string) => {
    const socket = new FakeSocket();
    const conn = manager.connect(socket, { username, room: `r${username}`, heartbeat: true });
    await settle();
    return { socket, conn, pings: () => socket.framesOf("ping").length };
  };
  return {
    clock,
    scheduler,
    manager,
    open,
    [Symbol.asyncDispose]: () => manager[Symbol.asyncDispose](),
  };
}

Deno.test("clients that connected over a second are pinged over a second, not all at once", async () => {
  await using h = harness();
  const clients = [];
  for (let i = 0; i < 100; i++) {
    clients.push(await h.open(`u${i}`));
    h.scheduler.advance(10);
  }
  // Each client's first ping is due INTERVAL_MS after it connected: count them 10 ms at a time.
  h.scheduler.advance(INTERVAL_MS - 1000 - 10);
  let before = 0;
  let most = 0;
  for (let step = 0; step < 150; step++) {
    h.scheduler.advance(10);
    await settle();
    const now = clients.reduce((sum, c) => sum + c.pings(), 0);
    most = Math.max(most, now - before);
    before = now;
  }
  assert.equal(before, 100, "every client pinged once");
  assert.ok(most <= 2, `${most} pings in one 10 ms step`);
});

Deno.test("a silent client is dropped within a slot of its timeout, a talking one is not", async () => {
  await using h = harness();
  const silent = await h.open("silent");
  const talker = await h.open("talker");
  for (let t = 0; t < 29; t++) {
    h.scheduler.advance(1000);
    talker.conn.receive('{"type":"pong"}');
  }
  h.scheduler.advance(970);
  assert.equal(silent.socket.closeCode(), undefined, "dropped early");
  h.scheduler.advance(30);
  assert.equal(silent.socket.closeCode(), 4000);
  assert.equal(talker.socket.closeCode(), undefined);
});

Deno.test("a client back from a slower heartbeat is pinged at the server's pace within an interval", async () => {
  await using h = harness();
  const tab = await h.open("tab");
  tab.conn.receive(JSON.stringify({ type: "heartbeat", interval_ms: 10 * INTERVAL_MS }));
  h.scheduler.advance(INTERVAL_MS * 3);
  tab.conn.receive('{"type":"pong"}');
  assert.equal(tab.pings(), 0, "pinged at the slower pace: not yet");
  tab.conn.receive(JSON.stringify({ type: "heartbeat", interval_ms: 0 }));
  h.scheduler.advance(INTERVAL_MS);
  await settle();
  assert.equal(tab.pings(), 1);
});

Deno.test("after a long pause one sweep drops the silent clients at once", async () => {
  const metrics = new Metrics();
  await using h = harness({ metrics });
  await Promise.all([1, 2, 3].map((n) => h.open(`p${n}`)));
  h.clock.time += 7 * 86_400_000;
  const started = performance.now();
  h.manager.sweep();
  assert.ok(performance.now() - started < 200, "the sweep walked a week of empty slots");
  assert.equal(metrics.heartbeatTimeouts, 3);
});
