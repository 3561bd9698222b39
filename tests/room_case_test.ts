import assert from "node:assert/strict";
import { roomName } from "../chat/names.ts";
import { startServer } from "./helpers/app_server.ts";
import { TestClient } from "./helpers/ws_client.ts";

const ADMIN_TOKEN = "admin-secret-0123456789abcdef";

Deno.test("roomName folds a room name to one spelling, or refuses it", async (t) => {
  await t.step("case and width fold to lowercase", () => {
    assert.equal(roomName("Dev"), "dev");
    assert.equal(roomName("DEV"), "dev");
    assert.equal(roomName("ｄｅｖ"), "dev");
    assert.equal(roomName("  Lobby "), "lobby");
  });
  await t.step("the folded name folds to itself", () => {
    for (const raw of ["Straße", "ΣΊΣΥΦΟΣ", "İstanbul", "Ärger 2"]) {
      const once = roomName(raw)!;
      assert.equal(roomName(once), once, raw);
    }
  });
  await t.step("a name that breaks the rules is undefined", () => {
    assert.equal(roomName(""), undefined);
    assert.equal(roomName("a/b"), undefined);
  });
});

Deno.test("room names are matched without regard to case on every route", async (t) => {
  await using server = await startServer({ ADMIN_TOKEN });

  await t.step("?room=Dev and ?room=dev are one room", async () => {
    await using a = await TestClient.connect(server.url("/ws/chat/Ann?room=Dev"));
    await using b = await TestClient.connect(server.url("/ws/chat/Ben?room=dev"));
    assert.equal((await a.next("welcome")).room, "dev");
    const welcome = await b.next("welcome");
    assert.equal(welcome.room, "dev");
    assert.deepEqual(welcome.users, ["Ann", "Ben"]);
    a.sendJson({ type: "message", message: "hi from Dev" });
    const got = await b.next((f) => f.type === "message" && f.message === "hi from Dev");
    assert.equal(got.room, "dev");
  });

  await t.step("/ws/rooms/DEV is the room dev", async () => {
    await using a = await TestClient.connect(server.url("/ws/chat/Ann?room=dev"));
    await using b = await TestClient.connect(server.url("/ws/rooms/DEV"));
    await a.next("welcome");
    assert.equal((await b.next("welcome")).room, "dev");
    b.sendJson({ type: "message", message: "from the path" });
    await a.next((f) => f.type === "message" && f.message === "from the path");
  });

  await t.step("join, message room, users and leave frames fold the name", async () => {
    await using a = await TestClient.connect(server.url("/ws/chat/Ann?room=lobby"));
    await using b = await TestClient.connect(server.url("/ws/chat/Ben?room=lobby"));
    await a.next("welcome");
    await b.next("welcome");
    a.sendJson({ type: "join", room: "Dev" });
    assert.equal((await a.next("joined")).room, "dev");
    b.sendJson({ type: "join", room: "DEV" });
    const joined = await b.next("joined");
    assert.equal(joined.room, "dev");
    assert.deepEqual(joined.users, ["Ann", "Ben"]);
    a.sendJson({ type: "message", room: "dEv", message: "mixed case room" });
    const got = await b.next((f) => f.type === "message" && f.message === "mixed case room");
    assert.equal(got.room, "dev");
    b.sendJson({ type: "users", room: "DEV" });
    assert.deepEqual((await b.next("users")).users, ["Ann", "Ben"]);
    b.sendJson({ type: "resume", room: "Dev", since: 0 });
    assert.equal((await b.next("joined")).room, "dev");
    b.sendJson({ type: "leave", room: "Dev" });
    assert.equal((await b.next("left")).room, "dev");
    assert.ok(!b.frames.some((f) => f.type === "error"), JSON.stringify(b.frames));
  });

  await t.step("the history API answers for LOBBY with lobby's messages", async () => {
    await using a = await TestClient.connect(server.url("/ws/chat/Ann?room=lobby"));
    await a.next("welcome");
    a.sendJson({ type: "message", message: "kept in the lobby" });
    await a.next((f) => f.type === "message" && f.message === "kept in the lobby");
    for (const path of ["/api/rooms/LOBBY/messages", "/api/rooms/Lobby/users"]) {
      const res = await fetch(server.httpUrl(path));
      const body = await res.json();
      assert.equal(res.status, 200, path);
      assert.equal(body.room, "lobby", path);
    }
    const res = await fetch(server.httpUrl("/api/rooms/LOBBY/messages"));
    const { messages } = await res.json();
    assert.ok(messages.some((m: { message: string }) => m.message === "kept in the lobby"));
  });

  await t.step("the admin close of LOBBY closes lobby", async () => {
    await using a = await TestClient.connect(server.url("/ws/chat/Ann?room=lobby"));
    await a.next("welcome");
    const res = await fetch(server.httpUrl("/api/admin/rooms/LOBBY/close"), {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    assert.deepEqual(await res.json(), { room: "lobby", connections: 1 });
    assert.equal(res.status, 200);
    assert.equal((await a.waitClosed()).code, 4001);
  });

  await t.step("an admin announce to room LOBBY reaches lobby", async () => {
    await using a = await TestClient.connect(server.url("/ws/chat/Ann?room=lobby"));
    await a.next("welcome");
    const res = await fetch(server.httpUrl("/api/admin/announce"), {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      body: JSON.stringify({ message: "to LOBBY", room: "LOBBY" }),
    });
    assert.equal(res.status, 200, await res.text());
    const got = await a.next((f) => f.type === "system" && f.message === "to LOBBY");
    assert.equal(got.room, "lobby");
  });
});
