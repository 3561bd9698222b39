/**
 * The restart case of issue 17 end to end: on the memory engine a restart
 * loses every message and ids start again at 1, so a returning client's
 * `since` means nothing. The epoch tells it apart: the reconnect is answered
 * `recovered: false` with the posts made after the restart.
 */

import assert from "node:assert/strict";
import { createApp, loadConfig } from "../main.ts";
import type { Frame } from "./helpers/fakes.ts";
import { TestClient } from "./helpers/ws_client.ts";

/** An app on the memory engine served on `port` (0: any free one). */
async function serve(port = 0) {
  const app = await createApp(loadConfig({ CHAT_ENGINE: "memory", PORT: "0", HOST: "127.0.0.1" }));
  const server = Deno.serve({ port, hostname: "127.0.0.1", onListen() {} }, app.handler);
  return {
    port: server.addr.port,
    async [Symbol.asyncDispose]() {
      await app[Symbol.asyncDispose]();
      await server.shutdown();
      await server.finished;
    },
  };
}

/** Connects `user` to room r with the given query and returns the client and its welcome. */
async function join(port: number, user: string, query: Record<string, string> = {}) {
  const params = new URLSearchParams({ room: "r", ...query });
  const client = await TestClient.connect(`ws://127.0.0.1:${port}/ws/chat/${user}?${params}`);
  return { client, welcome: await client.next("welcome") };
}

/** The chat messages of a welcome's history, as text. */
function said(welcome: Frame): string[] {
  return (welcome.history as Frame[]).filter((f) => f.type === "message").map((f) =>
    String(f.message)
  );
}

Deno.test("after a restart on the memory engine a returning user gets the new posts", async () => {
  let port: number;
  let seen: number;
  let epoch: string;
  {
    await using first = await serve();
    port = first.port;
    const { client: alice, welcome } = await join(port, "alice");
    await using _ = alice;
    epoch = String(welcome.epoch);
    assert.ok(epoch.length > 0, "the welcome carries the epoch");
    for (const text of ["one", "two", "three"]) alice.sendJson({ type: "message", message: text });
    seen = (await alice.next((f) => f.message === "three")).id as number;
    assert.ok(seen >= 3);
  }
  // The same address, a new process's worth of state.
  await using _second = await serve(port);
  {
    const { client: bob, welcome } = await join(port, "bob");
    await using _ = bob;
    assert.notEqual(welcome.epoch, epoch, "a restart of the memory engine is a new epoch");
    bob.sendJson({ type: "message", message: "after one" });
    bob.sendJson({ type: "message", message: "after two" });
    await bob.next((f) => f.message === "after two");
  }
  const { client: alice, welcome } = await join(port, "alice", {
    since: String(seen),
    epoch,
  });
  await using _ = alice;
  assert.equal(welcome.recovered, false, "ids of another epoch recover nothing");
  assert.deepEqual(said(welcome), ["after one", "after two"]);
  // The very ids a client deduplicating by id would have dropped as seen.
  const ids = (welcome.history as Frame[]).filter((f) => f.type === "message").map((f) => f.id);
  assert.ok(ids.every((id) => (id as number) <= seen), `ids ${ids} reuse ids up to ${seen}`);
  assert.equal(welcome.epoch, (await join(port, "carol")).welcome.epoch);
});

Deno.test("a recovery in the same epoch is unchanged; a bad epoch is refused", async () => {
  await using server = await serve();
  const { client: alice, welcome } = await join(server.port, "alice");
  await using _ = alice;
  alice.sendJson({ type: "message", message: "kept" });
  const kept = await alice.next((f) => f.message === "kept");
  alice.sendJson({ type: "message", message: "missed" });
  await alice.next((f) => f.message === "missed");
  const since = String(kept.id);
  const same = await join(server.port, "bob", { since, epoch: String(welcome.epoch) });
  await using _b = same.client;
  assert.equal(same.welcome.recovered, true);
  assert.deepEqual(said(same.welcome), ["missed"]);
  // In-band: a resume with another epoch gets the recent tail, recovered false.
  same.client.sendJson({ type: "resume", room: "r", since: kept.id, epoch: "other" });
  const joined = await same.client.next("joined");
  assert.equal(joined.recovered, false);
  assert.equal(joined.epoch, welcome.epoch);
  assert.deepEqual(said(joined), ["kept", "missed"]);
  const bad = await fetch(`http://127.0.0.1:${server.port}/ws/chat/x?since=1&epoch=%20bad`, {
    headers: { upgrade: "websocket" },
  });
  await bad.body?.cancel();
  assert.equal(bad.status, 400);
});
