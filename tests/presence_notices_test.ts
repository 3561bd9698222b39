import assert from "node:assert/strict";
import { aboutUser, type Frame } from "./helpers/fakes.ts";
import { startServer, type TestServer } from "./helpers/app_server.ts";
import { ENGINE_NAMES, engineEnv } from "./helpers/engine_env.ts";
import { TestClient } from "./helpers/ws_client.ts";

/**
 * These tests wait for many notices, each of which may wait for its room's
 * window: a short one keeps them quick (presence_window_test covers the window).
 */
const FAST = { RATE_LIMIT_BURST: "100", PRESENCE_WINDOW_MS: "50" };

/** Whether a frame is a join or leave notice. */
function isPresence(f: Frame): boolean {
  return f.type === "system" && (f.event === "join" || f.event === "leave");
}

/** A notice of `event` about `user`. */
function notice(event: string, user: string): (f: Frame) => boolean {
  return (f) => f.type === "system" && f.event === event && aboutUser(f, user);
}

/** Connects `user` to the lobby and awaits the welcome. */
async function join(
  server: TestServer,
  user: string,
): Promise<{ client: TestClient; welcome: Frame }> {
  const client = await TestClient.connect(server.url(`/ws/chat/${user}?room=lobby`));
  return { client, welcome: await client.next("welcome") };
}

/** What the welcome history and the messages API hold of the lobby, as `type event|message`. */
async function stored(
  server: TestServer,
  welcome: Frame,
): Promise<{ welcome: Frame[]; api: Frame[] }> {
  const res = await fetch(server.httpUrl("/api/rooms/lobby/messages"));
  assert.equal(res.status, 200);
  const body = await res.json();
  return { welcome: welcome.history as Frame[], api: body.messages as Frame[] };
}

Deno.test("join and leave notices are live only: reloads leave no trace in history", async (t) => {
  for (const name of ENGINE_NAMES) {
    await t.step(name, async () => {
      await using store = await engineEnv(name);
      await using server = await startServer({ ...store.env, ...FAST });
      const { client: alice } = await join(server, "Alice");
      await using _alice = alice;
      alice.sendJson({ type: "message", message: "hello" });
      await alice.next((f) => f.type === "message" && f.message === "hello");

      // Bobby reloads three times: Alice sees each join and leave live, without an id.
      for (let i = 0; i < 3; i++) {
        const { client: bobby } = await join(server, "Bobby");
        const joined = await alice.next(notice("join", "Bobby"));
        assert.equal(joined.id, undefined, "a join notice has no id");
        assert.equal(joined.connected_count, 2);
        // The joiner's own notice comes live after the welcome, never in it.
        await bobby.next(notice("join", "Bobby"));
        await bobby.close();
        const left = await alice.next(notice("leave", "Bobby"));
        assert.equal(left.id, undefined, "a leave notice has no id");
        assert.equal(left.connected_count, 1);
      }
      // An announce stays stored, with an id.
      await server.app.manager.announce("lobby", "announce", "maintenance at noon");
      const announced = await alice.next((f) => f.type === "system" && f.event === "announce");
      assert.equal(typeof announced.id, "number");

      const { client: carol, welcome } = await join(server, "Carol");
      await using _carol = carol;
      const held = await stored(server, welcome);
      for (const [where, frames] of Object.entries(held)) {
        assert.deepEqual(frames.filter(isPresence), [], `no join or leave in the ${where} history`);
        const said = frames.map((f) => f.type === "message" ? f.message : f.event);
        assert.deepEqual(said, ["hello", "announce"], `the ${where} history is the conversation`);
        assert.deepEqual(frames.map((f) => typeof f.id), ["number", "number"]);
      }
      await alice.next(notice("join", "Carol"));
    });
  }
});

Deno.test("a join notice reaches the room before the joiner's first message", async (t) => {
  for (const name of ENGINE_NAMES) {
    await t.step(name, async () => {
      await using store = await engineEnv(name);
      await using server = await startServer({ ...store.env, ...FAST });
      const { client: alice } = await join(server, "Alice");
      await using _alice = alice;
      for (let i = 0; i < 3; i++) {
        const bobby = await TestClient.connect(server.url("/ws/chat/Bobby?room=lobby"));
        // Sent at once, before the welcome: the message waits behind the join notice.
        bobby.sendJson({ type: "message", message: `first ${i}` });
        await bobby.next((f) => f.type === "message" && f.message === `first ${i}`);
        await alice.next((f) => f.type === "message" && f.message === `first ${i}`);
        await bobby.close();
        await alice.next(notice("leave", "Bobby"));
      }
      const seen = alice.frames
        .filter((f) =>
          notice("join", "Bobby")(f) || (f.type === "message" && f.username === "Bobby")
        )
        .map((f) => f.type === "message" ? f.message : "join");
      assert.deepEqual(seen, ["join", "first 0", "join", "first 1", "join", "first 2"]);
    });
  }
});

Deno.test("join and leave notices reach the room's members on another process", async (t) => {
  for (const name of ["kv", "redis"] as const) {
    await t.step(name, async () => {
      await using store = await engineEnv(name);
      await using a = await startServer({ ...store.env, ...FAST });
      await using b = await startServer({ ...store.env, ...FAST });
      const { client: alice } = await join(a, "Alice");
      await using _alice = alice;
      for (let i = 0; i < 3; i++) {
        const bobby = await TestClient.connect(b.url("/ws/chat/Bobby?room=lobby"));
        bobby.sendJson({ type: "message", message: `from b ${i}` });
        const joined = await alice.next(notice("join", "Bobby"));
        assert.equal(joined.id, undefined);
        assert.equal(joined.connected_count, 2, "counted on both processes");
        await alice.next((f) => f.type === "message" && f.message === `from b ${i}`);
        await bobby.next((f) => f.type === "message" && f.message === `from b ${i}`);
        await bobby.close();
        await alice.next(notice("leave", "Bobby"));
      }
      const { client: carol, welcome } = await join(b, "Carol");
      await using _carol = carol;
      for (const [where, frames] of Object.entries(await stored(a, welcome))) {
        const said = frames.map((f) => f.type === "message" ? f.message : f.event);
        assert.deepEqual(said, ["from b 0", "from b 1", "from b 2"], `the ${where} history`);
      }
      await alice.next(notice("join", "Carol"));
    });
  }
});

Deno.test("a leave reaches a member who came in on another process after the leaver", async (t) => {
  // The leaver's process read the room's users when it came in, alone: a member who joined
  // elsewhere since is not in that list, and is still told.
  for (const name of ["kv", "redis"] as const) {
    await t.step(name, async () => {
      await using store = await engineEnv(name);
      await using a = await startServer({ ...store.env, ...FAST });
      await using b = await startServer({ ...store.env, ...FAST });
      const { client: bobby } = await join(b, "Bobby");
      await using _bobby = bobby;
      const { client: alice } = await join(a, "Alice");
      await using _alice = alice;
      await bobby.next(notice("join", "Alice"));
      await bobby.close();
      await alice.next(notice("leave", "Bobby"), 5_000);
    });
  }
});
