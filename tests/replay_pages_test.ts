import assert from "node:assert/strict";
import { ConnectionManager, type ConnectionManagerOptions } from "../chat/connection_manager.ts";
import { MemoryEngine } from "../chat/engines/memory.ts";
import { DEFAULT_PRESENCE_NOTICES } from "../chat/presence_notices.ts";
import { FakeClock, FakeScheduler, FakeSocket, type Frame, settle } from "./helpers/fakes.ts";

const PAGE = 4096;

/** A manager whose room "big" holds `count` messages of about `size` bytes each. */
async function roomWith(count: number, size: number, options: ConnectionManagerOptions = {}) {
  const clock = new FakeClock();
  const scheduler = new FakeScheduler(clock);
  const manager = new ConnectionManager({
    clock,
    scheduler,
    engine: new MemoryEngine({ historyLimit: 1000, clock, scheduler }),
    replayMaxBytes: PAGE,
    rateLimitBurst: 10_000,
    ...options,
  });
  const writer = new FakeSocket();
  const w = manager.connect(writer, { username: "writer", room: "big" });
  await settle();
  for (let i = 1; i <= count; i++) {
    w.receive(JSON.stringify({ type: "message", message: `m${i} `.padEnd(size, "x") }));
  }
  await settle();
  // The writer's join notice window ends: the room is quiet, the next join is announced at once.
  // (up to a half longer at random)
  scheduler.advance(1.5 * DEFAULT_PRESENCE_NOTICES.presenceWindowMs);
  return { manager, clock, scheduler, [Symbol.asyncDispose]: () => manager[Symbol.asyncDispose]() };
}

/** The history-bearing frames a socket got, in order, and the history ids they carried. */
function replayOf(socket: FakeSocket): { frames: Frame[]; ids: number[] } {
  const frames = socket.frames().filter((f) =>
    f.type === "welcome" || f.type === "joined" || f.type === "history"
  );
  const ids = frames.flatMap((f) => (f.history as Frame[]).map((h) => h.id as number));
  return { frames, ids };
}

/** Bytes of the history array of a frame's text. */
function historyBytes(frame: Frame): number {
  return new TextEncoder().encode(JSON.stringify(frame.history)).length;
}

Deno.test("a long recovery arrives in pages of REPLAY_MAX_BYTES, whole and in order", async (t) => {
  await t.step("a welcome with since", async () => {
    await using room = await roomWith(120, 300);
    const socket = new FakeSocket();
    room.manager.connect(socket, { username: "late", room: "big", since: 0 });
    for (let i = 0; i < 20; i++) await settle();
    const { frames, ids } = replayOf(socket);
    assert.equal(frames[0]?.type, "welcome");
    assert.ok(frames.length >= 10, `pages: ${frames.length}`);
    for (const f of frames) assert.ok(historyBytes(f) <= PAGE + 1, `page of ${historyBytes(f)}`);
    for (const f of frames.slice(1)) assert.equal(f.type, "history");
    assert.deepEqual(frames.map((f) => f.more), [...frames.slice(1).map(() => true), false]);
    // The writer's 120 messages, each once: join notices are not stored.
    assert.deepEqual(ids, Array.from({ length: 120 }, (_, i) => i + 1));
    assert.equal(frames[0]!.recovered, true);
    // The late user's own join notice, published as it entered, comes once after the pages.
    const all = socket.frames();
    const joins = all.filter((f) => f.type === "system" && f.event === "join");
    assert.deepEqual(joins.map((f) => [f.user, f.id]), [["late", undefined]]);
    assert.ok(all.indexOf(joins[0]!) > all.findLastIndex((f) => f.type === "history"));
  });

  await t.step(
    "a resume of a room the client is in, then live frames after the last page",
    async () => {
      await using room = await roomWith(60, 300);
      const socket = new FakeSocket();
      const conn = room.manager.connect(socket, { username: "late", room: "big" });
      await settle();
      socket.take();
      conn.receive(JSON.stringify({ type: "resume", room: "big", since: 0 }));
      // A live message while the pages go out: after them, once.
      conn.receive(JSON.stringify({ type: "message", message: "live" }));
      for (let i = 0; i < 20; i++) await settle();
      const frames = socket.frames();
      const { frames: replayed, ids } = replayOf(socket);
      assert.equal(frames[0]?.type, "joined");
      assert.ok(replayed.length >= 5, `pages: ${replayed.length}`);
      assert.deepEqual(ids, Array.from({ length: ids.length }, (_, i) => i + 1));
      // Stored before the pages were read, "live" is in them or follows them, once.
      const inHistory = replayed.flatMap((f) => f.history as Frame[])
        .filter((h) => h.message === "live").length;
      const live = frames.findIndex((f) => f.type === "message" && f.message === "live");
      assert.equal(inHistory + (live === -1 ? 0 : 1), 1);
      if (live !== -1) assert.ok(live > frames.findLastIndex((f) => f.type === "history"));
    },
  );
});

Deno.test("the next page waits until the socket has sent most of the previous one", async () => {
  await using room = await roomWith(60, 300);
  const socket = new FakeSocket();
  socket.stall();
  room.manager.connect(socket, { username: "slow", room: "big", since: 0 });
  for (let i = 0; i < 20; i++) await settle();
  // Nothing drains: the welcome's page only, and the client is not dropped.
  assert.equal(replayOf(socket).frames.length, 1);
  assert.equal(socket.closedWith, undefined);
  socket.bufferedAmount = 0;
  room.scheduler.advance(25);
  for (let i = 0; i < 5; i++) await settle();
  assert.ok(replayOf(socket).frames.length >= 3, "the next page once drained");
});

Deno.test("the history API answers at most REPLAY_MAX_BYTES, newest last, with next_before", async () => {
  await using room = await roomWith(40, 300);
  const frames = await room.manager.history("big", { limit: 200 });
  const bytes = new TextEncoder().encode(JSON.stringify(frames)).length;
  assert.ok(bytes <= PAGE + 2, `bytes: ${bytes}`);
  assert.ok(frames.length >= 5 && frames.length < 40, `frames: ${frames.length}`);
  // The newest ones: the last stored id is 40 (the 40 messages; join notices are not stored).
  assert.equal(frames.at(-1)?.id, 40);
});
