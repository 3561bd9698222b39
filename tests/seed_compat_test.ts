import assert from "node:assert/strict";
import { SYSTEM_SENDER } from "../chat/protocol.ts";
import { startServer } from "./helpers/app_server.ts";
import type { Frame } from "./helpers/fakes.ts";
import { TestClient } from "./helpers/ws_client.ts";

Deno.test("the seeds' clients are understood as they are", async (t) => {
  await using server = await startServer();
  await using alice = await TestClient.connect(server.url("/ws/chat/Alice"));
  await using bob = await TestClient.connect(server.url("/ws/chat/Bob"));
  await alice.next("welcome");
  await bob.next("welcome");

  await t.step("seed 03: a private message without type, read with from", async () => {
    alice.sendJson({ message: "psst", target_user: "Bob" });
    const got = await bob.next("private");
    assert.equal(got.message, "psst");
    assert.equal(got.from, "Alice");
    assert.equal(got.to, "Bob");
  });

  await t.step("seed 03: a message without type goes to the room", async () => {
    alice.sendJson({ message: "to everyone" });
    const got = await bob.next((f) => f.type === "message" && f.message === "to everyone");
    assert.equal(got.sender, "Alice");
  });

  await t.step("seed 02: text in brackets is a message, not bad_json", async () => {
    alice.send("[smile] hi");
    await bob.next((f) => f.type === "message" && f.message === "[smile] hi");
    assert.ok(!alice.frames.some((f) => f.type === "error"), "an error frame");
  });

  await t.step("a private message's room must be one the sender is in", async () => {
    alice.sendJson({ type: "private", to: "Bob", message: "from nowhere", room: "secret" });
    const error = await alice.next("error");
    assert.equal(error.code, "not_in_room");
    alice.sendJson({ type: "private", to: "Bob", message: "from the lobby", room: "lobby" });
    const got = await bob.next((f) => f.type === "private" && f.message === "from the lobby");
    assert.equal(got.room, "lobby");
    assert.ok(!bob.frames.some((f) => f.message === "from nowhere"));
  });
});

Deno.test("ROOT_WS=chat serves the chat on /ws for seeds 01 and 02; the echo stays the default", async (t) => {
  await t.step("default: /ws echoes (seed 03)", async () => {
    await using server = await startServer();
    await using client = await TestClient.connect(server.url("/ws"));
    client.send("ping me");
    assert.equal(await client.nextText(() => true), "Echo: ping me");
  });
  await t.step("ROOT_WS=chat: /ws is a chat socket with a welcome", async () => {
    await using server = await startServer({ ROOT_WS: "chat" });
    await using a = await TestClient.connect(server.url("/ws"));
    await using b = await TestClient.connect(server.url("/ws?room=lobby"));
    await a.next("welcome");
    await b.next("welcome");
    a.send("hello from seed 01");
    await b.next((f) => f.type === "message" && f.message === "hello from seed 01");
  });
});

/** Frames a seed client shows: every frame but the heartbeat's `ping` and `heartbeat_ack`. */
function shownFrames(client: TestClient): Frame[] {
  return client.frames.filter((f) => f.type !== "ping" && f.type !== "heartbeat_ack");
}

/** The frames of `client` that seed 02's `${sender}: ${message}` would render with `undefined`. */
function unrenderable(client: TestClient): Frame[] {
  return shownFrames(client).filter((f) =>
    typeof f.sender !== "string" || typeof f.message !== "string" || f.message === ""
  );
}

Deno.test("every frame a seed client shows has a string sender and message", async (t) => {
  // A small REPLAY_MAX_BYTES, so that a join's history goes on in `history` frames.
  await using server = await startServer({ REPLAY_MAX_BYTES: "4096", ROOT_WS: "chat" });
  await using alice = await TestClient.connect(server.url("/ws/chat/alice/heartbeat"));
  await using bob = await TestClient.connect(server.url("/ws/chat/bob"));

  await t.step("welcome says who you are, where, and with how many", async () => {
    const welcome = await alice.next("welcome");
    assert.equal(welcome.sender, SYSTEM_SENDER);
    assert.match(String(welcome.message), /alice/);
    assert.match(String(welcome.message), /lobby/);
    const second = await bob.next("welcome");
    assert.match(String(second.message), /^Welcome, bob! .*lobby.* 1 other/);
  });

  await t.step("joined, history, users, left and error frames", async () => {
    const text = "x".repeat(1000);
    alice.sendJson({ type: "join", room: "dev" });
    await alice.next("joined");
    for (let i = 0; i < 8; i++) alice.sendJson({ type: "message", room: "dev", message: text });
    await alice.next((f) => f.type === "message" && f.id === 8);
    bob.sendJson({ type: "join", room: "dev" });
    const joined = await bob.next("joined");
    assert.equal(joined.more, true);
    await bob.next((f) => f.type === "history" && f.more === false);
    bob.sendJson({ type: "users", room: "dev" });
    const users = await bob.next("users");
    assert.match(String(users.message), /alice, bob/);
    bob.sendJson({ type: "leave", room: "dev" });
    await bob.next("left");
    bob.sendJson({ type: "leave", room: "nowhere" });
    await bob.next("error");
    alice.sendJson({ type: "private", to: "bob", message: "psst" });
    await bob.next("private");
    alice.sendJson({ type: "heartbeat" });
    await alice.next("heartbeat_ack");
  });

  await t.step("no shown frame lacks sender or message", () => {
    const types = (client: TestClient) => new Set(shownFrames(client).map((f) => f.type));
    for (const type of ["welcome", "joined", "system", "message"]) {
      assert.ok(types(alice).has(type), type);
    }
    for (const type of ["welcome", "joined", "history", "users", "left", "error", "private"]) {
      assert.ok(types(bob).has(type), type);
    }
    assert.deepEqual(unrenderable(alice), []);
    assert.deepEqual(unrenderable(bob), []);
  });

  await t.step("ROOT_WS=chat: seed 02's anonymous welcome names the user", async () => {
    await using carol = await TestClient.connect(server.url("/ws"));
    const welcome = await carol.next("welcome");
    assert.equal(welcome.sender, SYSTEM_SENDER);
    assert.match(String(welcome.message), new RegExp(`^Welcome, ${welcome.username}!`));
  });
});
