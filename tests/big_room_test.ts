import assert from "node:assert/strict";
import { ConnectionManager } from "../chat/connection_manager.ts";
import type { Presence } from "../chat/engines/engine.ts";
import { MemoryEngine } from "../chat/engines/memory.ts";
import { PRESENCE_CACHE_MS } from "../chat/presence_cache.ts";
import { ChatClient } from "../client/mod.ts";
import { startServer } from "./helpers/app_server.ts";
import { eventually } from "./helpers/eventually.ts";
import { aboutUser, FakeClock, FakeScheduler, FakeSocket, settle } from "./helpers/fakes.ts";
import { TestClient } from "./helpers/ws_client.ts";

Deno.test("a room above ROOM_PRESENCE_LIMIT announces no joins or leaves and pages its names", async (t) => {
  await using server = await startServer({ ROOM_PRESENCE_LIMIT: "3" });
  const open = async (name: string) => {
    const client = await TestClient.connect(server.url(`/ws/chat/${name}?room=big`));
    return { client, welcome: await client.next("welcome") };
  };
  const first = await open("u1");
  const second = await open("u2");
  const third = await open("u3");
  const joins = () => first.client.frames.filter((f) => f.type === "system" && f.event === "join");
  try {
    await t.step("up to the limit, joins are announced", async () => {
      await first.client.next((f) => f.event === "join" && aboutUser(f, "u3"));
      assert.deepEqual(third.welcome.users, ["u1", "u2", "u3"]);
      assert.equal(third.welcome.user_count, 3);
    });
    await using fourth = await TestClient.connect(server.url("/ws/chat/u4?room=big"));
    const welcome = await fourth.next("welcome");
    await t.step("past it, a join is not announced to everyone", async () => {
      // A message after the join: had the join been announced, it would have come first.
      fourth.sendJson({ type: "message", message: "after u4 joined" });
      await first.client.next((f) => f.message === "after u4 joined");
      assert.ok(!joins().some((f) => aboutUser(f, "u4")), "u4's join was announced");
    });
    await t.step("the welcome lists the first names and counts them all", () => {
      assert.deepEqual(welcome.users, ["u1", "u2", "u3"]);
      assert.equal(welcome.user_count, 4);
      // u4 is not on the page, and not one of the others.
      assert.equal(welcome.message, "Welcome, u4! You are in big with 3 others.");
      assert.equal(first.welcome.message, "Welcome, u1! You are in big with nobody else.");
    });
    await t.step("users comes in pages", async () => {
      fourth.sendJson({ type: "users" });
      const page1 = await fourth.next("users");
      assert.deepEqual([page1.users, page1.offset, page1.more, page1.connected_count], [
        ["u1", "u2", "u3"],
        0,
        true,
        4,
      ]);
      // The sentence names up to 20 whatever the page's size.
      assert.equal(page1.message, "Online in big (4): u1, u2, u3, u4.");
      fourth.sendJson({ type: "users", offset: 3 });
      const page2 = await fourth.next("users");
      assert.deepEqual([page2.users, page2.offset, page2.more], [["u4"], 3, false]);
      assert.equal(page2.message, page1.message);
      fourth.sendJson({ type: "users", offset: -1 });
      assert.equal((await fourth.next("error")).code, "bad_message");
    });
    await t.step(
      "a leave from the big room is not announced; below the limit again it is",
      async () => {
        await fourth.close();
        second.client.close();
        await first.client.next((f) => f.event === "leave" && aboutUser(f, "u2"));
        const leaves = first.client.frames.filter((f) => f.event === "leave")
          .flatMap((f) => f.users ?? [f.user]);
        assert.deepEqual(leaves, ["u2"]);
      },
    );
  } finally {
    for (const c of [first, second, third]) await c.client.close();
  }
});

Deno.test("ChatClient counts a big room's users and reads its list in pages", async () => {
  await using server = await startServer({ ROOM_PRESENCE_LIMIT: "2" });
  const others = [];
  for (const name of ["a1", "a2", "a3"]) {
    const client = await TestClient.connect(server.url(`/ws/chat/${name}?room=big`));
    await client.next("welcome");
    others.push(client);
  }
  const counts: number[] = [];
  await using chat = new ChatClient({ url: server.httpUrl("/"), username: "me", room: "big" });
  chat.on("users", ({ count }) => counts.push(count));
  try {
    chat.connect();
    await eventually("open", () => chat.state === "open");
    assert.deepEqual([chat.users(), chat.userCount()], [["a1", "a2"], 4]);
    assert.ok(chat.refreshUsers("big", chat.users().length));
    await eventually("the next page", () => chat.users().length === 4);
    assert.deepEqual(chat.users(), ["a1", "a2", "a3", "me"]);
    assert.equal(counts.at(-1), 4);
  } finally {
    for (const client of others) await client.close();
  }
});

/** A memory engine whose presence says a room has `elsewhere` members on other processes. */
class CrowdedEngine extends MemoryEngine {
  readonly elsewhere = Array.from({ length: 10 }, (_, i) => `far${i}`);
  /** Reads of a room's users from the store. */
  reads = 0;
  readonly presence: Presence = {
    join: () => {},
    leave: () => {},
    connect: () => {},
    disconnect: () => {},
    users: () => {
      this.reads++;
      return Promise.resolve(this.elsewhere);
    },
    lookup: () => Promise.resolve(undefined),
  };
}

Deno.test("a room is big by its members on every process, not only on this one", async () => {
  const clock = new FakeClock();
  await using manager = new ConnectionManager({
    clock,
    scheduler: new FakeScheduler(clock),
    engine: new CrowdedEngine(),
    roomPresenceLimit: 3,
    // Each notice at once: one held for its window would pass for one not sent.
    presenceWindowMs: 0,
  });
  const first = new FakeSocket();
  manager.connect(first, { username: "near1", room: "big" });
  await settle();
  assert.equal(first.framesOf("welcome")[0]?.user_count, 11);
  // Two members here, ten elsewhere: no one hears of the join.
  manager.connect(new FakeSocket(), { username: "near2", room: "big" });
  await settle();
  assert.deepEqual(first.framesOf("system").filter((f) => f.event === "join").map((f) => f.user), [
    "near1",
  ]);
});

Deno.test("users requests share a read of a room's list until PRESENCE_CACHE_MS or a notice", async () => {
  // On kv and redis a read is the room's whole list, whatever the page: a client's ten
  // requests a second must not each cost one.
  const clock = new FakeClock();
  const engine = new CrowdedEngine();
  await using manager = new ConnectionManager({
    clock,
    scheduler: new FakeScheduler(clock),
    engine,
    roomPresenceLimit: 3,
    presenceWindowMs: 0,
  });
  const socket = new FakeSocket();
  const conn = manager.connect(socket, { username: "near1", room: "big" });
  await settle();
  // After the joiner's own notice, which has the list read again.
  conn.receive(JSON.stringify({ type: "users" }));
  await settle();
  const before = engine.reads;
  for (let i = 0; i < 5; i++) conn.receive(JSON.stringify({ type: "users", offset: 3 }));
  await settle();
  const pages = socket.framesOf("users").slice(1);
  assert.equal(pages.length, 5);
  // This process's member first, then the others: from the fourth name, three.
  assert.deepEqual(pages[0]!.users, ["far2", "far3", "far4"]);
  assert.equal(pages[0]!.connected_count, 11);
  assert.equal(engine.reads - before, 0, "the first request's read serves them");
  clock.time += PRESENCE_CACHE_MS;
  conn.receive(JSON.stringify({ type: "users" }));
  await settle();
  assert.equal(engine.reads - before, 1);
  // A notice from another process (a join there) has the list read afresh, at once.
  engine.elsewhere.push("far10");
  await engine.publish("big", JSON.stringify({ type: "system", event: "join", user: "far10" }));
  conn.receive(JSON.stringify({ type: "users", offset: 9 }));
  await settle();
  assert.equal(engine.reads - before, 2);
  assert.deepEqual(socket.framesOf("users").at(-1)!.users, ["far8", "far9", "far10"]);
});

Deno.test("a page far down a big room costs more of the rate limit", async () => {
  // A page is found by walking the names before it: ten pages down cost one token more.
  await using server = await startServer({
    ROOM_PRESENCE_LIMIT: "1",
    RATE_LIMIT_PER_S: "1",
    RATE_LIMIT_BURST: "5",
  });
  await using client = await TestClient.connect(server.url("/ws/chat/u1?room=big"));
  await client.next("welcome");
  client.sendJson({ type: "users", offset: 1000, cid: "far" });
  const refused = await client.next("error");
  assert.deepEqual([refused.code, refused.cid], ["rate_limited", "far"]);
  assert.match(String(refused.message), /far down costs more: 1000/);
  // Refused, it took only the frame's own token: a page 30 down (3 more) still fits.
  client.sendJson({ type: "users", offset: 30 });
  const page = await client.next("users");
  assert.deepEqual([page.offset, page.users, page.connected_count], [30, [], 1]);
});
