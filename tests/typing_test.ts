import assert from "node:assert/strict";
import { ChatClient, type TypingFrame } from "../client/mod.ts";
import { startServer } from "./helpers/app_server.ts";
import { eventually } from "./helpers/eventually.ts";
import { FakeClock } from "./helpers/fakes.ts";
import { TestClient } from "./helpers/ws_client.ts";

Deno.test("typing is passed on live, at most once per 2 s per connection, never stored", async (t) => {
  const clock = new FakeClock();
  await using server = await startServer({}, { clock });
  await using alice = await TestClient.connect(server.url("/ws/chat/alice"));
  await using bob = await TestClient.connect(server.url("/ws/chat/bob"));
  await using carol = await TestClient.connect(server.url("/ws/chat/carol?room=other"));
  for (const c of [alice, bob, carol]) await c.next("welcome");
  const typing = (c: TestClient) => c.frames.filter((f) => f.type === "typing");

  await t.step("the room sees who is typing", async () => {
    alice.sendJson({ type: "typing" });
    const frame = await bob.next("typing");
    assert.deepEqual(frame, { type: "typing", room: "lobby", user: "alice" });
  });
  await t.step("more within 2 s are dropped; after 2 s the next goes", async () => {
    clock.time += 1000;
    alice.sendJson({ type: "typing" });
    alice.sendJson({ type: "message", message: "marker 1" });
    await bob.next((f) => f.message === "marker 1");
    assert.equal(typing(bob).length, 1);
    clock.time += 1500;
    alice.sendJson({ type: "typing", room: "LOBBY" });
    alice.sendJson({ type: "message", message: "marker 2" });
    await bob.next((f) => f.message === "marker 2");
    assert.equal(typing(bob).length, 2);
    assert.ok(!alice.frames.some((f) => f.type === "error"), "an error for a dropped typing");
  });
  await t.step("private typing reaches its target only", async () => {
    clock.time += 2500;
    carol.sendJson({ type: "typing", to: "Bob" });
    const frame = await bob.next((f) => f.type === "typing" && f.user === "carol");
    assert.equal(frame.to, "Bob");
    carol.sendJson({ type: "message", message: "marker 3" });
    alice.sendJson({ type: "message", message: "marker 4" });
    await alice.next((f) => f.message === "marker 4");
    assert.ok(!typing(alice).some((f) => f.user === "carol"));
  });
  await t.step("typing in a room one is not in is refused", async () => {
    clock.time += 2500;
    alice.sendJson({ type: "typing", room: "secret" });
    assert.equal((await alice.next("error")).code, "not_in_room");
  });
  await t.step("nothing of it is stored", async () => {
    const response = await fetch(server.httpUrl("/api/rooms/lobby/messages"));
    const body = await response.json();
    assert.ok(!JSON.stringify(body).includes('"typing"'), JSON.stringify(body));
    await using dave = await TestClient.connect(server.url("/ws/chat/dave"));
    const welcome = await dave.next("welcome");
    assert.ok(!JSON.stringify(welcome.history).includes('"typing"'));
  });
});

Deno.test("ChatClient sends typing at most once per 2 s per target and reports others' typing", async () => {
  await using server = await startServer();
  const alice = new ChatClient({ url: server.httpUrl("/"), username: "alice" });
  const bob = new ChatClient({ url: server.httpUrl("/"), username: "bob" });
  await using _a = alice;
  await using _b = bob;
  const seenByBob: TypingFrame[] = [];
  const seenByAlice: TypingFrame[] = [];
  bob.on("typing", (frame) => seenByBob.push(frame));
  alice.on("typing", (frame) => seenByAlice.push(frame));
  alice.connect();
  bob.connect();
  await eventually("both open", () => alice.state === "open" && bob.state === "open");
  for (let i = 0; i < 5; i++) alice.typing();
  alice.typing({ to: "bob" });
  await eventually("bob saw two", () => seenByBob.length === 2);
  assert.deepEqual(seenByBob.map((f) => f.to ?? "room"), ["room", "bob"]);
  assert.equal((await alice.send("done")).status, "stored");
  assert.equal(seenByBob.length, 2);
  assert.deepEqual(seenByAlice, [], "alice was told of her own typing");
});
