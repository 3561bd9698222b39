import assert from "node:assert/strict";
import { KvEngine } from "../chat/engines/kv.ts";
import { MemoryEngine } from "../chat/engines/memory.ts";
import { message, testEngineContract, waitFor } from "./helpers/engine_contract.ts";

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
      engine: ({ historyLimit }) => new MemoryEngine({ historyLimit }),
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
      engine: ({ historyLimit }) => new KvEngine({ path: `${dir.path}/chat.kv`, historyLimit }),
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
    await engine.publish("room", message("room", "hello"));
    assert.ok((await Deno.stat(path)).isFile);
  });

  await t.step("frames older than the TTL are not served", async () => {
    await using dir = await tempDir();
    await using engine = new KvEngine({ path: `${dir.path}/chat.kv`, historyTtlS: 60 });
    await engine.start(() => {});
    const old = {
      ...message("room", "old"),
      timestamp: new Date(Date.now() - 120_000).toISOString(),
    };
    await engine.publish("room", old);
    await engine.publish("room", message("room", "new"));
    const page = await engine.history("room", { after: 0, limit: 10 });
    assert.deepEqual(page.frames.map((f) => f.id), [2]);
    assert.equal(page.complete, false);
    assert.deepEqual((await engine.history("room", { limit: 10 })).frames.map((f) => f.id), [2]);
  });

  await t.step("a frame too large for a KV value is refused alone", async () => {
    await using dir = await tempDir();
    await using engine = new KvEngine({ path: `${dir.path}/chat.kv` });
    await engine.start(() => {});
    const big = engine.publish("room", message("room", "x".repeat(70_000)));
    const small = engine.publish("room", message("room", "fits"));
    await assert.rejects(big, RangeError);
    assert.equal((await small).id, 1);
  });

  await t.step("publish after dispose rejects", async () => {
    await using dir = await tempDir();
    const engine = new KvEngine({ path: `${dir.path}/chat.kv` });
    await engine.start(() => {});
    await engine[Symbol.asyncDispose]();
    await assert.rejects(engine.publish("room", message("room", "late")), /closed/);
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
          // A system frame counts the users of every engine.
          const notice = await b.publish("r", {
            type: "system",
            room: "r",
            event: "join",
            message: "Bob joined the room",
            username: "System",
            sender: "System",
            connected_count: 1,
            timestamp: new Date().toISOString(),
          });
          assert.equal(notice.type === "system" && notice.connected_count, 2);
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
    for (const room of rooms) await writer.publish(room, message(room, "hi"));
    await waitFor(() => got.length >= rooms.length, "a frame of every room");
    assert.deepEqual(got.sort(), [...rooms].sort());
    // An unsubscribed room is no longer delivered.
    reader.unsubscribe("room 0");
    await writer.publish("room 0", message("room 0", "gone"));
    await writer.publish("room 1", message("room 1", "still"));
    await waitFor(() => got.length >= rooms.length + 1, "the frame of room 1");
    assert.equal(got.filter((c) => c === "room 0").length, 1);
  });
});
