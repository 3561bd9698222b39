import assert from "node:assert/strict";
import { createApp, loadConfig } from "../main.ts";
import type { Frame } from "./helpers/fakes.ts";
import { TestClient } from "./helpers/ws_client.ts";

/** A real server on an ephemeral loopback port; a generous rate limit for bursts. */
async function startServer(env: Record<string, string>) {
  const app = await createApp(loadConfig({
    PORT: "0",
    HOST: "127.0.0.1",
    RATE_LIMIT_PER_S: "10000",
    RATE_LIMIT_BURST: "1000",
    ...env,
  }));
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, app.handler);
  const host = `127.0.0.1:${server.addr.port}`;
  return {
    app,
    http: `http://${host}`,
    /** Connects a user to a room (optionally with `since`) and awaits the welcome. */
    async join(user: string, room: string, since?: number) {
      const query = new URLSearchParams({ room });
      if (since !== undefined) query.set("since", String(since));
      const client = await TestClient.connect(`ws://${host}/ws/chat/${user}?${query}`);
      const welcome = await client.next("welcome");
      return { client, welcome };
    },
    async [Symbol.asyncDispose]() {
      await app[Symbol.asyncDispose]();
      await server.shutdown();
      await server.finished;
    },
  };
}

/** A temporary folder for KV files, removed on dispose. */
async function tempDir(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "chat_history_" });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}

/** The environment of each engine under test; the kv one on a fresh file. */
const ENGINES: { name: string; env: (dir: string) => Record<string, string> }[] = [
  { name: "memory", env: () => ({ CHAT_ENGINE: "memory" }) },
  { name: "kv", env: (dir) => ({ CHAT_ENGINE: "kv", KV_PATH: `${dir}/chat.kv` }) },
];

function ids(frames: Frame[]): number[] {
  return frames.map((f) => f.id as number);
}

function texts(frames: Frame[]): unknown[] {
  return frames.filter((f) => f.type === "message").map((f) => f.message);
}

/** What a frame says, to compare replays exactly: a message's text, a notice's event and user. */
function said(f: Frame): string {
  return f.type === "message" ? String(f.message) : `${f.type} ${f.event} ${f.user}`;
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

/**
 * Asserts that a replay (a welcome's or joined's history) is exactly `expected` on
 * consecutive ids; join and leave notices are live only, never in it. Returns its
 * last id.
 */
function assertReplay(history: Frame[], expected: string[]): number {
  assert.deepEqual(history.map(said), expected);
  const lastId = history.at(-1)?.id as number;
  assert.deepEqual(ids(history), range(lastId - expected.length + 1, lastId));
  return lastId;
}

/**
 * Asserts the room's frames after a replay: the user's own join notice, live and
 * without an id, then `live` on the id after the replay's last.
 */
function assertLiveAfter(frames: Frame[], lastId: number, user: string, live: string): void {
  const room = frames.filter((f) =>
    f.room === "r" && (f.type === "message" || f.type === "system")
  );
  assert.deepEqual(room.map(said), [`system join ${user}`, live]);
  assert.deepEqual(room.map((f) => f.id), [undefined, lastId + 1]);
}

/** Sends messages and resolves once the sender saw the echo of the last one (all acked). */
async function sendAll(client: TestClient, room: string, messages: string[]): Promise<void> {
  for (const message of messages) client.sendJson({ type: "message", room, message });
  const last = messages.at(-1);
  await client.next((f) => f.type === "message" && f.message === last, 10_000);
}

function numbered(prefix: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix}${i + 1}`);
}

for (const engine of ENGINES) {
  Deno.test(`${engine.name}: a reconnect with since gets exactly what was missed, then live`, async () => {
    await using dir = await tempDir();
    await using server = await startServer(engine.env(dir.path));
    const { client: alice } = await server.join("alice", "r");
    await using _alice = alice;
    const bob = await server.join("bob", "r");
    alice.sendJson({ type: "message", room: "r", message: "before" });
    const seen = await bob.client.next((f) => f.message === "before");
    await bob.client.close();

    const missed = numbered("m", 100);
    await sendAll(alice, "r", missed);
    const { client: bob2, welcome } = await server.join("bob", "r", seen.id as number);
    await using _bob2 = bob2;
    assert.equal(welcome.recovered, true);
    // Exactly what followed `since`, in order: the 100 messages (Bob's leave and
    // join notices are live only).
    const history = welcome.history as Frame[];
    const lastId = assertReplay(history, missed);
    assert.equal(history[0]?.id, (seen.id as number) + 1);

    alice.sendJson({ type: "message", room: "r", message: "live" });
    await bob2.next((f) => f.message === "live");
    assertLiveAfter(bob2.frames, lastId, "bob", "live");
  });

  Deno.test(`${engine.name}: a gap past retention is not recovered and gets the retained tail`, async () => {
    await using dir = await tempDir();
    await using server = await startServer({ ...engine.env(dir.path), HISTORY_LIMIT: "10" });
    const { client: alice } = await server.join("alice", "r");
    await using _alice = alice;
    const bob = await server.join("bob", "r");
    alice.sendJson({ type: "message", room: "r", message: "before" });
    const seen = await bob.client.next((f) => f.message === "before");
    await bob.client.close();

    const sent = numbered("m", 30);
    await sendAll(alice, "r", sent);
    const { client: bob2, welcome } = await server.join("bob", "r", seen.id as number);
    await using _bob2 = bob2;
    assert.equal(welcome.recovered, false);
    // The 10 newest stored frames: the last messages (notices are not stored).
    assertReplay(welcome.history as Frame[], sent.slice(-10));
  });

  Deno.test(`${engine.name}: resume on an open socket replays a room, then goes live`, async () => {
    await using dir = await tempDir();
    await using server = await startServer(engine.env(dir.path));
    const { client: alice } = await server.join("alice", "r");
    await using _alice = alice;
    const bob = await server.join("bob", "r");
    alice.sendJson({ type: "message", room: "r", message: "before" });
    const seen = await bob.client.next((f) => f.message === "before");
    await bob.client.close();

    const missed = numbered("m", 20);
    await sendAll(alice, "r", missed);
    const { client: bob2 } = await server.join("bob", "lobby");
    await using _bob2 = bob2;
    bob2.sendJson({ type: "resume", room: "r", since: seen.id });
    const joined = await bob2.next((f) => f.type === "joined" && f.room === "r");
    assert.equal(joined.recovered, true);
    const history = joined.history as Frame[];
    const lastId = assertReplay(history, missed);
    assert.equal(history[0]?.id, (seen.id as number) + 1);
    alice.sendJson({ type: "message", room: "r", message: "live" });
    await bob2.next((f) => f.message === "live");
    assertLiveAfter(bob2.frames, lastId, "bob", "live");
  });
}

Deno.test("kv: history and ids survive a restart on the same file", async () => {
  await using dir = await tempDir();
  const env = { CHAT_ENGINE: "kv", KV_PATH: `${dir.path}/chat.kv` };
  let last: Frame;
  {
    await using server = await startServer(env);
    const { client: alice } = await server.join("alice", "r");
    await using _alice = alice;
    await sendAll(alice, "r", numbered("m", 5));
    last = alice.frames.filter((f) => f.message === "m5")[0]!;
  }
  // The same name is free at once: a clean stop removed its presence.
  await using server = await startServer(env);
  const { client: alice, welcome } = await server.join("alice", "r", 0);
  await using _alice = alice;
  assert.equal(welcome.recovered, true);
  assert.deepEqual(texts(welcome.history as Frame[]), numbered("m", 5));
  alice.sendJson({ type: "message", room: "r", message: "after restart" });
  const next = await alice.next((f) => f.message === "after restart");
  assert.ok((next.id as number) > (last.id as number));
});

Deno.test("HTTP API serves rooms, users and paged messages", async (t) => {
  await using dir = await tempDir();
  await using server = await startServer({ CHAT_ENGINE: "kv", KV_PATH: `${dir.path}/chat.kv` });
  const { client: alice } = await server.join("alice", "r");
  await using _alice = alice;
  await sendAll(alice, "r", numbered("m", 12));
  const get = async (path: string) => {
    const res = await fetch(`${server.http}${path}`);
    return { status: res.status, type: res.headers.get("content-type"), body: await res.json() };
  };

  await t.step("rooms with member counts", async () => {
    const { status, body } = await get("/api/rooms");
    assert.equal(status, 200);
    assert.deepEqual(body.rooms, [{ room: "r", users: ["alice"], connected_count: 1 }]);
  });

  await t.step("users of a room", async () => {
    assert.deepEqual((await get("/api/rooms/r/users")).body, {
      room: "r",
      users: ["alice"],
      connected_count: 1,
    });
    assert.deepEqual((await get("/api/rooms/empty/users")).body.users, []);
  });

  await t.step("messages newest last, paged with before", async () => {
    const first = await get("/api/rooms/r/messages?limit=5");
    assert.equal(first.status, 200);
    assert.deepEqual(texts(first.body.messages), numbered("m", 12).slice(7));
    const older = await get(`/api/rooms/r/messages?limit=5&before=${first.body.next_before}`);
    assert.deepEqual(texts(older.body.messages), numbered("m", 12).slice(2, 7));
    const all = await get("/api/rooms/r/messages");
    assert.deepEqual(texts(all.body.messages), numbered("m", 12));
    assert.equal(all.body.next_before, null);
    // A limit above the cap is capped, not refused.
    assert.equal((await get("/api/rooms/r/messages?limit=100000")).status, 200);
    assert.deepEqual((await get("/api/rooms/nobody%20here/messages")).body.messages, []);
  });

  await t.step("bad parameters are a 400 with a JSON error", async () => {
    for (
      const path of [
        "/api/rooms/r/messages?limit=0",
        "/api/rooms/r/messages?limit=abc",
        "/api/rooms/r/messages?before=-1",
        "/api/rooms/r/messages?before=1.5",
        "/api/rooms/%40alice%7Cbob/messages",
        "/api/rooms/~x/users",
      ]
    ) {
      const { status, type, body } = await get(path);
      assert.equal(status, 400, path);
      assert.match(type ?? "", /application\/json/);
      assert.equal(typeof body.error, "string", path);
    }
  });
});
