import assert from "node:assert/strict";
import { startServer } from "./helpers/app_server.ts";
import { TestClient } from "./helpers/ws_client.ts";

Deno.test("a client id (cid) comes back on the stored frame or on the error that answers it", async (t) => {
  await using server = await startServer({ RATE_LIMIT_PER_S: "1", RATE_LIMIT_BURST: "3" });
  await using alice = await TestClient.connect(server.url("/ws/chat/alice"));
  await using bob = await TestClient.connect(server.url("/ws/chat/bob"));
  await alice.next("welcome");
  const welcome = await bob.next("welcome");

  await t.step("welcome announces the rate limit", () => {
    assert.deepEqual(welcome.limits, { max_message_bytes: 16384, rate_per_s: 1, burst: 3 });
  });
  await t.step("a stored message carries its cid, to everyone", async () => {
    alice.sendJson({ type: "message", message: "tagged", cid: "a-1" });
    const got = await bob.next((f) => f.message === "tagged");
    assert.equal(got.cid, "a-1");
    assert.equal((await alice.next((f) => f.message === "tagged")).cid, "a-1");
  });
  await t.step("an error answering a tagged frame carries its cid", async () => {
    alice.sendJson({ type: "private", to: "nobody", message: "psst", cid: "a-2" });
    const error = await alice.next("error");
    assert.equal(error.code, "user_not_found");
    assert.equal(error.cid, "a-2");
  });
  await t.step("a malformed cid is bad_message", async () => {
    alice.sendJson({ type: "message", message: "x", cid: "<script>" });
    const error = await alice.next("error");
    assert.equal(error.code, "bad_message");
    assert.equal(error.cid, undefined);
  });
  await t.step("a rate-limited frame's error carries its cid", async () => {
    bob.sendJson({ type: "message", message: "one", cid: "b-1" });
    bob.sendJson({ type: "message", message: "two", cid: "b-2" });
    bob.sendJson({ type: "message", message: "three", cid: "b-3" });
    bob.sendJson({ type: "message", message: "four", cid: "b-4" });
    const error = await bob.next((f) => f.type === "error" && f.code === "rate_limited");
    assert.equal(error.cid, "b-4");
    assert.equal(error.message, "Sending too fast; slow down");
  });
});
