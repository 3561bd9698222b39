import assert from "node:assert/strict";
import { ConnectionManager, type ConnectOptions } from "../chat/connection_manager.ts";
import type { HistoryPage, HistoryQuery } from "../chat/engines/engine.ts";
import { MemoryEngine } from "../chat/engines/memory.ts";
import { TAIL_CACHE_MS, TailCache } from "../chat/tail_cache.ts";
import { FakeClock, FakeScheduler, FakeSocket, type Frame, settle } from "./helpers/fakes.ts";

/** A memory engine that counts its reads of a room's recent tail and fails one when told. */
class CountingEngine extends MemoryEngine {
  tailReads = 0;
  failNext = false;
  override history(channel: string, query: HistoryQuery): Promise<HistoryPage> {
    if (query.after === undefined) this.tailReads++;
    if (this.failNext) {
      this.failNext = false;
      return Promise.reject(new Error("Store down"));
    }
    return super.history(channel, query);
  }
}

function harness() {
  const clock = new FakeClock();
  const scheduler = new FakeScheduler(clock);
  const engine = new CountingEngine();
  const manager = new ConnectionManager({ engine, clock, scheduler, presenceWindowMs: 0 });
  const open = async (connect: ConnectOptions) => {
    const socket = new FakeSocket();
    const conn = manager.connect(socket, connect);
    await settle();
    return { socket, conn };
  };
  return {
    clock,
    engine,
    manager,
    open,
    [Symbol.asyncDispose]: () => manager[Symbol.asyncDispose](),
  };
}

/** The texts of the history in a client's welcome. */
function welcomeHistory(socket: FakeSocket): unknown[] {
  const welcome = socket.frames()[0]!;
  assert.equal(welcome.type, "welcome");
  return (welcome.history as Frame[]).map((f) => f.message);
}

Deno.test("a burst of first visits reads the room's history once, until the next message", async (t) => {
  await using h = harness();
  const alice = await h.open({ username: "alice" });
  alice.conn.receive("m1");
  await settle();
  const before = h.engine.tailReads;

  await t.step("joiners one after another share one read", async () => {
    for (const username of ["bob", "carol", "dave"]) {
      const joiner = await h.open({ username });
      assert.deepEqual(welcomeHistory(joiner.socket), ["m1"], username);
    }
    assert.equal(h.engine.tailReads - before, 1);
  });

  await t.step("a message makes the next joiner read again, and see it", async () => {
    alice.conn.receive("m2");
    await settle();
    const eve = await h.open({ username: "eve" });
    assert.deepEqual(welcomeHistory(eve.socket), ["m1", "m2"]);
    assert.equal(h.engine.tailReads - before, 2);
  });

  await t.step("after TAIL_CACHE_MS the tail is read again, with no message", async () => {
    h.clock.time += TAIL_CACHE_MS;
    const frank = await h.open({ username: "frank" });
    assert.deepEqual(welcomeHistory(frank.socket), ["m1", "m2"]);
    assert.equal(h.engine.tailReads - before, 3);
  });
});

Deno.test("a room left empty reads its history anew on the next visit", async () => {
  // On kv and redis a process follows a room only while it has members there.
  await using h = harness();
  const alice = await h.open({ username: "alice" });
  alice.conn.receive("m1");
  await settle();
  // Carol's read, after the message, is the room's tail when it empties.
  const carol = await h.open({ username: "carol" });
  for (const { conn } of [alice, carol]) conn.closed(1000);
  await settle();
  const reads = h.engine.tailReads;
  const bob = await h.open({ username: "bob" });
  assert.deepEqual(welcomeHistory(bob.socket), ["m1"]);
  assert.equal(h.engine.tailReads - reads, 1);
});

Deno.test("a failed read of the room's history is not kept for the next joiner", async () => {
  await using h = harness();
  const alice = await h.open({ username: "alice" });
  alice.conn.receive("m1");
  await settle();
  h.engine.failNext = true;
  const bob = await h.open({ username: "bob" });
  assert.deepEqual(welcomeHistory(bob.socket), []);
  const carol = await h.open({ username: "carol" });
  assert.deepEqual(welcomeHistory(carol.socket), ["m1"]);
});

Deno.test("a tail over the cache's byte budget is read for each joiner, not kept", async (t) => {
  await using engine = new CountingEngine();
  await engine.start(() => {});
  const frame = JSON.stringify({ type: "message", message: "x".repeat(100) });
  await engine.publish("lobby", frame, { history: true });
  const members = new Set();
  for (const [maxBytes, reads] of [[100, 2], [1000, 1]] as const) {
    await t.step(`budget ${maxBytes} bytes: ${reads} read(s) for two joiners`, async () => {
      const cache = new TailCache({ engine, clock: new FakeClock(), limit: 50, maxBytes });
      const before = engine.tailReads;
      for (let i = 0; i < 2; i++) assert.equal((await cache.tail("lobby", members)).length, 1);
      assert.equal(engine.tailReads - before, reads);
    });
  }
});

Deno.test("a tail read that outlived the TTL leaves the byte budget as it was", async () => {
  // A slow read, swept as expired when it came back, once counted bytes no tail held.
  await using engine = new CountingEngine();
  await engine.start(() => {});
  const frame = JSON.stringify({ type: "message", message: "x".repeat(100) });
  for (const room of ["a", "b", "c"]) await engine.publish(room, frame, { history: true });
  const clock = new FakeClock();
  const cache = new TailCache({ engine, clock, limit: 50, maxBytes: 150 });
  const members = new Set();
  await cache.tail("a", members);
  let release = () => {};
  const held = new Promise<void>((resolve) => release = resolve);
  const read = engine.history.bind(engine);
  engine.history = (channel, query) => held.then(() => read(channel, query));
  const slow = cache.tail("b", members);
  clock.time += TAIL_CACHE_MS;
  release();
  await slow;
  engine.history = read;
  const before = engine.tailReads;
  for (let i = 0; i < 2; i++) await cache.tail("c", members);
  assert.equal(engine.tailReads - before, 1, "room c's tail fits the budget and is kept");
});
