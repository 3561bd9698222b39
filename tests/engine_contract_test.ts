import assert from "node:assert/strict";
import { stampId } from "../chat/publisher.ts";
import { KvEngine } from "../chat/engines/kv.ts";
import { createLogger } from "../chat/logger.ts";
import { MemoryEngine } from "../chat/engines/memory.ts";
import { FakeClock, FakeScheduler } from "./helpers/fakes.ts";
import { payload, store, testEngineContract } from "./helpers/engine_contract.ts";
import { eventually } from "./helpers/eventually.ts";
import { sweepIntervalMs, userChannel } from "../chat/engines/engine.ts";

/** A temporary folder for KV files, removed on dispose. */
async function tempDir(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "chat_kv_" });
  return {
    path,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }),
  };
}

/** What a KV file holds: the store's count, its stored payload bytes and every key. */
interface KvContents {
  /** Bytes added minus bytes removed, as the engines count them. */
  counted: number;
  /** UTF-8 bytes of every stored publication (not the ephemeral stream). */
  actual: number;
  keys: Deno.KvKey[];
}

/** Reads a KV file whole, on a handle of its own. */
async function contents(path: string): Promise<KvContents> {
  const kv = await Deno.openKv(path);
  try {
    const result: KvContents = { counted: 0, actual: 0, keys: [] };
    for await (const entry of kv.list<unknown>({ prefix: [] })) {
      result.keys.push(entry.key);
      const [root, channel, kind] = entry.key;
      if (root === "chat" && channel === "\u0000bytes") {
        const sum = Number((entry.value as Deno.KvU64).value);
        result.counted += kind === "added" ? sum : -sum;
      } else if (root === "chat" && kind === "msg" && channel !== "\u0000ev") {
        result.actual += new TextEncoder().encode((entry.value as { p: string }).p).length;
      }
    }
    return result;
  } finally {
    kv.close();
  }
}

/** Whether a key belongs to a channel: its keys, or its activity index entry. */
function ofChannel(key: Deno.KvKey, channel: string): boolean {
  return key[0] === "chat" && (key[1] === channel || key[3] === channel);
}

/** Moves fake time on a second at a time, letting the sweeps run, until `done`. */
async function sweepUntil(scheduler: FakeScheduler, what: string, done: () => boolean) {
  await eventually(what, () => {
    scheduler.advance(1000);
    return done();
  });
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
  await t.step("says where it opened its database, every time", async () => {
    await using dir = await tempDir();
    const lines: string[] = [];
    const logger = createLogger({ write: (line) => lines.push(line) });
    const path = `${dir.path}/chat.kv`;
    for (let i = 0; i < 2; i++) {
      await using engine = new KvEngine({ path, logger });
      await engine.start(() => {});
    }
    const opened = lines.map((l) => JSON.parse(l)).filter((e) => e.event === "kv_opened");
    assert.deepEqual(opened.map((e) => e.path), [path, path]);
  });

  await t.step("creates the folder of its file", async () => {
    await using dir = await tempDir();
    const path = `${dir.path}/nested/deeper/chat.kv`;
    await using engine = new KvEngine({ path });
    await engine.start(() => {});
    await store(engine, "room", payload("room", "hello"));
    assert.ok((await Deno.stat(path)).isFile);
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

Deno.test("kv engine keeps its store bounded", async (t) => {
  await t.step("room churn keeps the stored bytes and the file within the budget", async () => {
    await using dir = await tempDir();
    const path = `${dir.path}/chat.kv`;
    const historyMaxBytes = 200_000;
    await using engine = new KvEngine({ path, historyMaxBytes });
    await engine.start(() => {});
    const text = "x".repeat(1000);
    // 2000 rooms, each with 4 publications and never used again: 8 MB through a 200 kB budget.
    for (let i = 0; i < 2000; i += 50) {
      await Promise.all(Array.from({ length: 50 }, async (_, j) => {
        const room = `churn ${i + j}`;
        for (let k = 0; k < 4; k++) await store(engine, room, payload(room, text));
      }));
    }
    await eventually("stored bytes within the budget", () => {
      return engine.stats().storedBytes <= historyMaxBytes;
    });
    const kv = await contents(path);
    assert.ok(kv.actual <= historyMaxBytes, `stored: ${kv.actual}`);
    assert.equal(kv.counted, kv.actual);
    assert.ok(engine.stats().evictions > 7000, `evictions: ${engine.stats().evictions}`);
    // Emptied rooms are deleted whole: keys stay in proportion to the budget.
    assert.ok(kv.keys.length < 1000, `keys: ${kv.keys.length}`);
    // SQLite reuses the freed pages: far below the 8 MB that went through.
    const { size } = await Deno.stat(path);
    assert.ok(size < 5_000_000, `file: ${size} bytes`);
  });

  await t.step("retention trims a busy channel and keeps the count exact", async () => {
    await using dir = await tempDir();
    const path = `${dir.path}/chat.kv`;
    await using engine = new KvEngine({ path, historyLimit: 100 });
    await engine.start(() => {});
    for (let i = 1; i <= 300; i++) await store(engine, "busy", payload("busy", `m${i} é`));
    const kept = (kv: KvContents) => kv.keys.filter((k) => k[1] === "busy" && k[2] === "msg");
    // The trim runs every 12 publications: at most that many beyond the limit.
    await eventually("trimmed", async () => kept(await contents(path)).length <= 112);
    const kv = await contents(path);
    assert.ok(kept(kv).length >= 100, `kept: ${kept(kv).length}`);
    assert.equal(kv.counted, kv.actual);
    await eventually("counted", () => engine.stats().storedBytes === kv.actual);
    const page = await engine.history("busy", { limit: 1000 });
    assert.deepEqual(page.publications.map((p) => p.offset)[0], 201);
    // Two writers in turns: each trims what the other may already have.
    await using other = new KvEngine({ path, historyLimit: 100 });
    await other.start(() => {});
    for (let i = 301; i <= 600; i++) {
      await store(Math.floor(i / 25) % 2 ? other : engine, "busy", payload("busy", `m${i}`));
    }
    const both = await contents(path);
    assert.equal(both.counted, both.actual);
    assert.ok(kept(both).length <= 112, `kept: ${kept(both).length}`);
  });

  await t.step("an eviction between a writer's trims keeps the count exact", async () => {
    await using dir = await tempDir();
    const path = `${dir.path}/chat.kv`;
    await using writer = new KvEngine({ path, historyLimit: 100 });
    await writer.start(() => {});
    const text = (i: number) => payload("busy", `m${i}`.padEnd(100, "."));
    for (let i = 1; i <= 150; i++) await store(writer, "busy", text(i));
    // Another engine, with a budget 20 publications short, evicts the oldest of "busy".
    const size = new TextEncoder().encode(text(1)).length;
    const historyMaxBytes = (await contents(path)).counted - 20 * size;
    await using evictor = new KvEngine({ path, historyMaxBytes });
    await evictor.start(() => {});
    await store(evictor, "other", text(0));
    await eventually("the eviction", () => evictor.stats().evictions >= 20);
    // The writer's next trims must not remove (and count) the evicted again.
    for (let i = 151; i <= 200; i++) await store(writer, "busy", text(i));
    const kv = await contents(path);
    assert.equal(kv.counted, kv.actual);
  });

  await t.step("a channel idle for roomTtlS leaves no key behind, nor bytes", async () => {
    await using dir = await tempDir();
    const path = `${dir.path}/chat.kv`;
    const clock = new FakeClock(Date.now());
    const scheduler = new FakeScheduler(clock);
    await using engine = new KvEngine({ path, roomTtlS: 60, clock, scheduler });
    await engine.start(() => {});
    // More publications than one deletion batch takes.
    for (let i = 1; i <= 250; i++) await store(engine, "gone", payload("gone", `m${i}`));
    await store(engine, userChannel("gone"), payload("gone", "dm"));
    clock.time += 30_000;
    await store(engine, "kept", payload("kept", "hi"));
    await sweepUntil(scheduler, "both idle channels deleted", () => {
      return engine.stats().expiredChannels === 2;
    });
    const kv = await contents(path);
    const left = kv.keys.filter((k) => ofChannel(k, "gone") || ofChannel(k, userChannel("gone")));
    assert.deepEqual(left, []);
    assert.ok(kv.keys.some((k) => ofChannel(k, "kept")));
    assert.equal(kv.counted, kv.actual);
    assert.equal(engine.stats().storedBytes, kv.actual);
  });

  await t.step("two engines sweeping one file delete each channel once", async () => {
    await using dir = await tempDir();
    const path = `${dir.path}/chat.kv`;
    const clock = new FakeClock(Date.now());
    const scheduler = new FakeScheduler(clock);
    await using a = new KvEngine({ path, roomTtlS: 60, clock, scheduler });
    await using b = new KvEngine({ path, roomTtlS: 60, clock, scheduler });
    await a.start(() => {});
    await b.start(() => {});
    const rooms = Array.from({ length: 40 }, (_, i) => `idle ${i}`);
    for (const room of rooms) {
      for (let i = 0; i < 30; i++) await store(i % 2 ? a : b, room, payload(room, `m${i}`));
    }
    // One scheduler: both engines' sweeps start in the same tick and race.
    await sweepUntil(scheduler, "every idle room deleted", () => {
      return a.stats().expiredChannels + b.stats().expiredChannels >= rooms.length;
    });
    for (let i = 0; i < 3; i++) {
      scheduler.advance(sweepIntervalMs(60));
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal(a.stats().expiredChannels + b.stats().expiredChannels, rooms.length);
    const kv = await contents(path);
    assert.deepEqual(kv.keys.filter((k) => rooms.some((room) => ofChannel(k, room))), []);
    // Removed bytes were counted once: the count is back at zero, not below.
    assert.equal(kv.counted, 0);
    assert.equal(kv.actual, 0);
  });

  await t.step("a publish racing a sweep is kept or starts the channel again", async () => {
    await using dir = await tempDir();
    const path = `${dir.path}/chat.kv`;
    for (let round = 0; round < 6; round++) {
      const clock = new FakeClock(Date.now());
      const scheduler = new FakeScheduler(clock);
      const sweeper = new KvEngine({ path, roomTtlS: 60, clock, scheduler });
      await using writer = new KvEngine({ path, roomTtlS: 60, clock });
      await sweeper.start(() => {});
      await writer.start(() => {});
      const room = `raced ${round}`;
      for (let i = 1; i <= 300; i++) await store(writer, room, payload(room, `m${i}`));
      clock.time += 61_000;
      scheduler.advance(1);
      // Later each round, so the publish lands at a different step of the deletion.
      await new Promise((resolve) => setTimeout(resolve, round));
      const text = payload(room, "raced");
      const position = await store(writer, room, text);
      // Time for the sweep in flight to go on after the publish (dispose
      // would cut it short at its next step), then dispose waits for its end.
      await new Promise((resolve) => setTimeout(resolve, 200));
      await sweeper[Symbol.asyncDispose]();
      const kv = await contents(path);
      assert.equal(kv.counted, kv.actual);
      const page = await writer.history(room, { after: position.offset - 1, limit: 10 });
      assert.equal(page.position.offset, position.offset, `round ${round}`);
      assert.deepEqual(page.publications, [{ offset: position.offset, payload: text }]);
      assert.ok(position.offset === 1 || position.offset === 301, `offset: ${position.offset}`);
    }
  });

  await t.step("a subscriber of a deleted channel gets its new offsets from 1", async () => {
    await using dir = await tempDir();
    const clock = new FakeClock(Date.now());
    const scheduler = new FakeScheduler(clock);
    const got: (number | undefined)[] = [];
    await using engine = new KvEngine({
      path: `${dir.path}/chat.kv`,
      roomTtlS: 60,
      clock,
      scheduler,
    });
    await engine.start((_channel, _payload, offset) => got.push(offset));
    engine.subscribe("room");
    for (let i = 1; i <= 3; i++) await store(engine, "room", payload("room", `m${i}`));
    await sweepUntil(scheduler, "the room deleted", () => engine.stats().expiredChannels === 1);
    assert.equal((await store(engine, "room", payload("room", "again"))).offset, 1);
    await eventually("four deliveries", () => got.length >= 4);
    assert.deepEqual(got, [1, 2, 3, 1]);
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
