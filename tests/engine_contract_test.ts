import assert from "node:assert/strict";
import { stampId } from "../chat/publisher.ts";
import { KvEngine } from "../chat/engines/kv.ts";
import { MemoryEngine } from "../chat/engines/memory.ts";
import { FakeClock, FakeScheduler } from "./helpers/fakes.ts";
import { payload, store, testEngineContract } from "./helpers/engine_contract.ts";
import { eventually } from "./helpers/eventually.ts";

/** A temporary folder for KV files, removed on dispose. */
async function tempDir(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "chat_kv_" });
  return {
    path,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }),
  };
}

testEngineContract({
  name: "memory",
  shared: false,
  persistent: false,
  open: () => {
    // Every engine of the memory store is a store of its own.
    return Promise.resolve({
      engine: (spec) => new MemoryEngine(spec),
      [Symbol.asyncDispose]: () => Promise.resolve(),
    });
  },
});

testEngineContract({
  name: "kv",
  // Two handles on one file in one process act like two workers of `deno serve --parallel`.
  shared: true,
  persistent: true,
  open: async () => {
    const dir = await tempDir();
    return {
      engine: (spec) => new KvEngine({ path: `${dir.path}/chat.kv`, ...spec }),
      [Symbol.asyncDispose]: () => dir[Symbol.asyncDispose](),
    };
  },
});

Deno.test("kv engine specifics", async (t) => {
  await t.step("creates the folder of its file", async () => {
    await using dir = await tempDir();
    const path = `${dir.path}/nested/deeper/chat.kv`;
    await using engine = new KvEngine({ path });
    await engine.start(() => {});
    await store(engine, "room", payload("room", "hello"));
    assert.ok((await Deno.stat(path)).isFile);
  });

  await t.step("publications older than the TTL are not served (fake time)", async () => {
    await using dir = await tempDir();
    const clock = new FakeClock(Date.now());
    await using engine = new KvEngine({ path: `${dir.path}/chat.kv`, historyTtlS: 60, clock });
    await engine.start(() => {});
    await store(engine, "room", payload("room", "old"));
    clock.time += 120_000;
    await store(engine, "room", payload("room", "new"));
    const page = await engine.history("room", { after: 0, limit: 10 });
    assert.deepEqual(page.publications.map((p) => p.offset), [2]);
    assert.equal(page.complete, false);
    const recent = await engine.history("room", { limit: 10 });
    assert.deepEqual(recent.publications.map((p) => p.offset), [2]);
  });

  await t.step("a frame too large for a KV value is refused alone", async () => {
    await using dir = await tempDir();
    await using engine = new KvEngine({ path: `${dir.path}/chat.kv` });
    await engine.start(() => {});
    const big = engine.publish("room", payload("room", "x".repeat(70_000)), { history: true });
    const small = store(engine, "room", payload("room", "fits"));
    await assert.rejects(big, RangeError);
    assert.equal((await small).offset, 1);
  });

  await t.step("publish after dispose rejects", async () => {
    await using dir = await tempDir();
    const engine = new KvEngine({ path: `${dir.path}/chat.kv` });
    await engine.start(() => {});
    await engine[Symbol.asyncDispose]();
    await assert.rejects(store(engine, "room", payload("room", "late")), /closed/);
  });

  await t.step(
    "presence is shared by the engines on one file and skips stale entries",
    async () => {
      await using dir = await tempDir();
      const path = `${dir.path}/chat.kv`;
      const b = new KvEngine({ path });
      await b.start(() => {});
      try {
        {
          await using a = new KvEngine({ path });
          await a.start(() => {});
          a.presence.connect("Alice", "id-alice");
          a.presence.join("r", "Alice");
          b.presence.connect("Bob");
          b.presence.join("r", "Bob");
          await a.presence.users("r");
          assert.deepEqual((await b.presence.users("r")).sort(), ["Alice", "Bob"]);
          const holder = { username: "Alice", userId: "id-alice" };
          assert.deepEqual(await b.presence.lookup("ALICE"), holder);
          assert.deepEqual(await b.presence.lookup("Bob"), { username: "Bob", userId: null });
          a.presence.leave("r", "Alice");
          assert.deepEqual(await a.presence.users("r"), ["Bob"]);
          a.presence.join("r", "Alice");
        }
        // A disposed engine removes its entries.
        assert.deepEqual(await b.presence.users("r"), ["Bob"]);
        assert.equal(await b.presence.lookup("alice"), undefined);
        // Skipped: an entry of this process whose stamp expired (a crashed
        // worker), and a live one of another process on the file (a crashed run).
        const kv = await Deno.openKv(path);
        const stale = { name: "Ghost", expires: Date.now() - 1 };
        const alien = { name: "Ghost", expires: Date.now() + 60_000 };
        await kv.set(["chat_presence", "u", "ghost", `pid ${Deno.pid}/x`], stale);
        await kv.set(["chat_presence", "r", "r", "ghost", `pid ${Deno.pid}/x`], stale);
        await kv.set(["chat_presence", "u", "ghost", "pid 0/y"], alien);
        await kv.set(["chat_presence", "r", "r", "ghost", "pid 0/y"], alien);
        kv.close();
        assert.equal(await b.presence.lookup("ghost"), undefined);
        assert.deepEqual(await b.presence.users("r"), ["Bob"]);
      } finally {
        await b[Symbol.asyncDispose]();
      }
    },
  );

  await t.step("keeps following many rooms (more than one watch)", async () => {
    await using dir = await tempDir();
    const path = `${dir.path}/chat.kv`;
    await using reader = new KvEngine({ path });
    const got: string[] = [];
    await reader.start((channel) => got.push(channel));
    await using writer = new KvEngine({ path });
    await writer.start(() => {});
    const rooms = Array.from({ length: 25 }, (_, i) => `room ${i}`);
    for (const room of rooms) reader.subscribe(room);
    await Promise.all(rooms.map((room) => reader.history(room, { limit: 1 })));
    for (const room of rooms) await store(writer, room, payload(room, "hi"));
    await eventually("a publication of every room", () => got.length >= rooms.length);
    assert.deepEqual(got.sort(), [...rooms].sort());
    // An unsubscribed room is no longer delivered.
    reader.unsubscribe("room 0");
    await store(writer, "room 0", payload("room 0", "gone"));
    await store(writer, "room 1", payload("room 1", "still"));
    await eventually("the publication of room 1", () => got.length >= rooms.length + 1);
    assert.equal(got.filter((c) => c === "room 0").length, 1);
  });
});

Deno.test("stampId splices the id right after the frame's type, once, byte for byte", () => {
  const payload = JSON.stringify({ type: "message", room: "r", message: 'a,b $& "id":1 \u2028' });
  const stamped = stampId(42, payload);
  assert.ok(stamped.startsWith('{"type":"message","id":42,"room":"r",'));
  assert.deepEqual(JSON.parse(stamped), { id: 42, ...JSON.parse(payload) });
  assert.equal(stampId(7, '{"type":"x"}'), '{"type":"x","id":7}');
  assert.equal(stampId(7, "{}"), '{"id":7}');
});

Deno.test("kv presence: refreshed members stay past the TTL, silent ones drop out (fake time)", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/chat.kv`;
  const clock = new FakeClock(Date.now());
  const scheduler = new FakeScheduler(clock);
  // Only `live` refreshes on the scheduler; `silent` has one that never runs, as a hung process.
  await using live = new KvEngine({ path, presenceTtlS: 30, clock, scheduler });
  await using silent = new KvEngine({
    path,
    presenceTtlS: 30,
    clock,
    scheduler: new FakeScheduler(new FakeClock()),
  });
  await live.start(() => {});
  await silent.start(() => {});
  live.presence.join("r", "Alice");
  silent.presence.join("r", "Bob");
  await silent.presence.users("r");
  assert.deepEqual((await live.presence.users("r")).sort(), ["Alice", "Bob"]);
  // Three refresh periods of 10 s each, letting each refresh's write land.
  for (let i = 0; i < 4; i++) {
    scheduler.advance(10_000);
    await live.presence.users("r");
  }
  assert.deepEqual(await live.presence.users("r"), ["Alice"]);
});
