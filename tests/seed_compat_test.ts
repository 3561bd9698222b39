import assert from "node:assert/strict";
import { startServer } from "./helpers/app_server.ts";
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
