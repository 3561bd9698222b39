/**
 * Each seed tutorial's whole client flow, in order, against a real server:
 * what its page or client.js sends and what it expects to show. The seeds
 * are in /work/shared/seeds (summarised in its README.md); one test per
 * seed, one step per stage.
 */

import assert from "node:assert/strict";
import { SYSTEM_SENDER } from "../chat/protocol.ts";
import { startServer, type TestServer } from "./helpers/app_server.ts";
import { eventually } from "./helpers/eventually.ts";
import { aboutUser, type Frame } from "./helpers/fakes.ts";
import { TestClient } from "./helpers/ws_client.ts";

const WAIT_MS = 5000;
const ADMIN_TOKEN = "admin-secret-0123456789abcdef";

/** What seed 02's client.js puts in the list for a frame. */
const render02 = (f: Frame) => `${f.sender}: ${f.message}`;

/** Waits for the next chat message with this text. */
const messageWith = (client: TestClient, text: string) =>
  client.next((f) => f.type === "message" && f.message === text, WAIT_MS);

/** Waits for the next system notice of `event`, about `user` when given. */
const notice = (client: TestClient, event: string, user?: string) =>
  client.next(
    (f) => f.type === "system" && f.event === event && (user === undefined || aboutUser(f, user)),
    WAIT_MS,
  );

/** A POST to the admin API with the token. */
function admin(server: TestServer, path: string, body: unknown = {}): Promise<Response> {
  return fetch(server.httpUrl(`/api/admin${path}`), {
    method: "POST",
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

Deno.test("seed 01: plain text on /ws is broadcast to everyone, with a leave notice", async (t) => {
  await using server = await startServer({ ROOT_WS: "chat" });
  await using first = await TestClient.connect(server.url("/ws"));
  await using second = await TestClient.connect(server.url("/ws"));

  await t.step("both pages connect to /ws", async () => {
    await first.next("welcome", WAIT_MS);
    await second.next("welcome", WAIT_MS);
  });
  await t.step("ws.send(input.value) reaches every page, the sender's too", async () => {
    first.send("hello everyone");
    for (const page of [first, second]) {
      const text = await page.nextText((s) => s.includes("hello everyone"), WAIT_MS);
      assert.equal(JSON.parse(text).type, "message");
    }
  });
  await t.step("a page that goes away is announced to the others", async () => {
    const { username } = second.frames[0]!;
    await second.close();
    const left = await notice(first, "leave", String(username));
    assert.equal(left.sender, SYSTEM_SENDER);
  });
  await t.step("onclose reconnects to /ws and the chat goes on", async () => {
    await using again = await TestClient.connect(server.url("/ws"));
    await again.next("welcome", WAIT_MS);
    again.send("back again");
    await first.nextText((s) => s.includes("back again"), WAIT_MS);
  });
});

Deno.test("seed 02: every frame renders as sender: message, with names and renames", async (t) => {
  await using server = await startServer({ ROOT_WS: "chat" });
  await using one = await TestClient.connect(server.url("/ws"));
  let name1 = "";
  let name2 = "";

  await t.step("the server names each user User N and says so", async () => {
    const welcome = await one.next("welcome", WAIT_MS);
    name1 = String(welcome.username);
    assert.match(name1, /^User \d+$/);
    assert.equal(render02(welcome).startsWith(`System: Welcome, ${name1}!`), true);
  });

  await using two = await TestClient.connect(server.url("/ws"));
  await t.step("a second user's arrival is a System line", async () => {
    name2 = String((await two.next("welcome", WAIT_MS)).username);
    const joined = await notice(one, "join", name2);
    assert.equal(render02(joined), `System: ${name2} joined the room`);
  });
  await t.step('{"type":"message"} is shown with its sender', async () => {
    one.sendJson({ type: "message", message: "你好！" });
    assert.equal(render02(await messageWith(two, "你好！")), `${name1}: 你好！`);
  });
  await t.step("text that is not JSON is a plain message", async () => {
    two.send("just text");
    assert.equal(render02(await messageWith(one, "just text")), `${name2}: just text`);
  });
  await t.step("rename tells everyone, and later messages carry the new name", async () => {
    one.sendJson({ type: "rename", name: "小明" });
    const renamed = await notice(two, "rename", "小明");
    assert.equal(render02(renamed), `System: ${name1} is now 小明`);
    one.sendJson({ type: "message", message: "after the rename" });
    assert.equal(render02(await messageWith(two, "after the rename")), "小明: after the rename");
  });
  await t.step("leaving is a System line", async () => {
    await one.close();
    assert.equal(render02(await notice(two, "leave", "小明")), "System: 小明 left the room");
  });
  await t.step("nothing the page showed read undefined", () => {
    for (const frame of two.frames) {
      if (frame.type === "ping" || frame.type === "heartbeat_ack") continue;
      assert.doesNotMatch(render02(frame), /undefined/, JSON.stringify(frame));
    }
  });
});

Deno.test("seed 03: echo, chat, named chat with private messages, and the heartbeat", async (t) => {
  await using server = await startServer({
    HEARTBEAT_INTERVAL_MS: "100",
    HEARTBEAT_TIMEOUT_MS: "400",
  });

  await t.step("/ws echoes to the sender only", async () => {
    await using ws = await TestClient.connect(server.url("/ws"));
    ws.send("Hello");
    assert.equal(await ws.nextText(() => true, WAIT_MS), "Echo: Hello");
  });
  await t.step("/ws/chat: anonymous users, join and leave notices", async () => {
    await using a = await TestClient.connect(server.url("/ws/chat"));
    await a.next("welcome", WAIT_MS);
    const b = await TestClient.connect(server.url("/ws/chat"));
    const name = String((await b.next("welcome", WAIT_MS)).username);
    assert.equal((await notice(a, "join", name)).connected_count, 2);
    b.sendJson({ type: "message", message: "anon hi" });
    await messageWith(a, "anon hi");
    await b.close();
    assert.equal((await notice(a, "leave", name)).connected_count, 1);
  });

  await using alice = await TestClient.connect(server.url("/ws/chat/Alice"));
  await using bob = await TestClient.connect(server.url("/ws/chat/Bob"));
  await t.step("/ws/chat/{username}: a join notice with connected_count", async () => {
    await alice.next("welcome", WAIT_MS);
    await bob.next("welcome", WAIT_MS);
    assert.equal((await notice(alice, "join", "Bob")).connected_count, 2);
  });
  await t.step("a message comes back to everyone; username tells own from others'", async () => {
    const sent = { type: "message", username: "Mallory", message: "Hello!" };
    alice.sendJson({ ...sent, timestamp: "2000-01-01T00:00:00.000Z" });
    const own = await messageWith(alice, "Hello!");
    const other = await messageWith(bob, "Hello!");
    assert.equal(own.username, "Alice", "own message: shown on the right");
    assert.equal(other.username, "Alice", "someone else's: shown on the left for Bob");
    assert.notEqual(own.timestamp, "2000-01-01T00:00:00.000Z");
  });
  await t.step("a private message by target_user reaches its target, read with from", async () => {
    alice.sendJson({ message: "Secret message", target_user: "Bob" });
    const got = await bob.next("private", WAIT_MS);
    assert.equal(got.from, "Alice");
    assert.equal(got.message, "Secret message");
    assert.equal((await alice.next("private", WAIT_MS)).to, "Bob");
  });
  await t.step("the online status query lists who is online", async () => {
    bob.sendJson({ type: "users" });
    const users = await bob.next("users", WAIT_MS);
    assert.deepEqual(users.users, ["Alice", "Bob"]);
    assert.equal(users.connected_count, 2);
  });
  await t.step("/ws/chat/{username}/heartbeat: ping, pong, heartbeat_ack, timeout", async () => {
    await using hb = await TestClient.connect(server.url("/ws/chat/Hearty/heartbeat"));
    const welcome = await hb.next("welcome", WAIT_MS);
    assert.deepEqual(welcome.heartbeat, { interval_ms: 100, timeout_ms: 400 });
    await hb.next("ping", WAIT_MS);
    hb.sendJson({ type: "pong" });
    hb.sendJson({ type: "heartbeat", timestamp: new Date().toISOString() });
    await hb.next("heartbeat_ack", WAIT_MS);
    // Then silence: the server gives up after the timeout.
    assert.equal((await hb.waitClosed(WAIT_MS)).code, 4000);
  });
  await t.step("FAQ: past MAX_CONNECTIONS a socket is closed 1008 Server is full", async () => {
    await using small = await startServer({ MAX_CONNECTIONS: "1" });
    await using first = await TestClient.connect(small.url("/ws/chat/One"));
    await first.next("welcome", WAIT_MS);
    await using second = await TestClient.connect(small.url("/ws/chat/Two"));
    assert.deepEqual(await second.waitClosed(WAIT_MS), { code: 1008, reason: "Server is full" });
  });
});

Deno.test("seed 04: echo for testing by hand, and rooms by a path segment", async (t) => {
  await using server = await startServer({ ADMIN_TOKEN });
  const roomA = `room-${crypto.randomUUID().slice(0, 8)}`;
  const roomB = `room-${crypto.randomUUID().slice(0, 8)}`;

  await t.step("/ws answers what it was sent (Postman's test)", async () => {
    await using ws = await TestClient.connect(server.url("/ws"));
    ws.send("Hello Ithome");
    assert.equal(await ws.nextText(() => true, WAIT_MS), "Echo: Hello Ithome");
  });

  await using a1 = await TestClient.connect(server.url(`/ws/rooms/${roomA}`));
  await using a2 = await TestClient.connect(server.url(`/ws/rooms/${roomA}`));
  await using b1 = await TestClient.connect(server.url(`/ws/rooms/${roomB}`));
  await t.step("each room id in the path is its own chat room", async () => {
    for (const c of [a1, a2, b1]) await c.next("welcome", WAIT_MS);
    a1.send("only for room A");
    await messageWith(a2, "only for room A");
    b1.send("only for room B");
    await messageWith(b1, "only for room B");
    assert.ok(!b1.frames.some((f) => f.message === "only for room A"));
    assert.ok(!a2.frames.some((f) => f.message === "only for room B"));
  });
  await t.step("one global manager knows every room", async () => {
    const { rooms } = await (await fetch(server.httpUrl("/api/rooms"))).json();
    const counts = Object.fromEntries(
      rooms.map((r: { room: string; connected_count: number }) => [r.room, r.connected_count]),
    );
    assert.equal(counts[roomA], 2);
    assert.equal(counts[roomB], 1);
  });
  await t.step("push to every room at once", async () => {
    const res = await admin(server, "/announce", { message: "to every room" });
    assert.equal(res.status, 200, await res.text());
    for (const c of [a1, a2, b1]) {
      const got = await c.next((f) => f.type === "system" && f.event === "announce", WAIT_MS);
      assert.equal(got.message, "to every room");
    }
  });
  await t.step("close a room: its sockets close, the other room's stay", async () => {
    assert.equal((await admin(server, `/rooms/${roomA}/close`)).status, 200);
    for (const c of [a1, a2]) assert.equal((await c.waitClosed(WAIT_MS)).code, 4001);
    b1.send("room B goes on");
    await messageWith(b1, "room B goes on");
    assert.equal(b1.closeInfo, undefined);
  });
});

Deno.test("seed 05: two users side by side on the heartbeat route", async (t) => {
  await using server = await startServer();
  await using user1 = await TestClient.connect(server.url("/ws/chat/User1/heartbeat"));
  await using user2 = await TestClient.connect(server.url("/ws/chat/User2/heartbeat"));

  await t.step("both are connected with the heartbeat on", async () => {
    for (const c of [user1, user2]) {
      const welcome = await c.next("welcome", WAIT_MS);
      assert.notEqual(welcome.heartbeat, null, "connected (heartbeat enabled)");
    }
  });
  await t.step("User1 sees User2 join, as a System notice", async () => {
    const joined = await notice(user1, "join", "User2");
    assert.equal(joined.sender, SYSTEM_SENDER);
  });
  await t.step("each sees own messages and the other's, told apart by username", async () => {
    user1.sendJson({ type: "message", message: "Hi User2" });
    user2.sendJson({ type: "message", message: "Hi User1" });
    const sides: [TestClient, string, string][] = [[user1, "User1", "User2"], [
      user2,
      "User2",
      "User1",
    ]];
    for (const [me, self, other] of sides) {
      const said = (text: string) =>
        me.frames.find((f) => f.type === "message" && f.message === text);
      await eventually("both messages", () => !!said("Hi User1") && !!said("Hi User2"), {
        timeoutMs: WAIT_MS,
      });
      assert.equal(said(`Hi ${other}`)!.username, self, "own: on the right");
      assert.equal(said(`Hi ${self}`)!.username, other, "the other's: on the left");
    }
  });
  await t.step("every message and notice has a timestamp to show", () => {
    const shown = user1.frames.filter((f) => f.type === "message" || f.type === "system");
    assert.ok(shown.length >= 3);
    for (const f of shown) assert.ok(!Number.isNaN(Date.parse(String(f.timestamp))), f.type);
  });
  await t.step("User2 leaving is a System notice for User1", async () => {
    await user2.close();
    await notice(user1, "leave", "User2");
  });
});
