import assert from "node:assert/strict";
import type { Frame } from "./helpers/fakes.ts";
import { spawnServer } from "./helpers/server_process.ts";
import { TestClient } from "./helpers/ws_client.ts";

const SERVE = new URL("../serve.ts", import.meta.url).pathname;

Deno.test("kv: users on different workers of deno serve --parallel chat and recover", async () => {
  const dir = await Deno.makeTempDir({ prefix: "chat_parallel_" });
  try {
    await using server = await spawnServer({
      args: [
        "serve",
        "--parallel",
        "--port",
        "0",
        "--host",
        "127.0.0.1",
        "--allow-all",
        "--unstable-kv",
        SERVE,
      ],
      env: {
        DENO_JOBS: "2",
        CHAT_ENGINE: "kv",
        KV_PATH: `${dir}/chat.kv`,
        RATE_LIMIT_PER_S: "10000",
        RATE_LIMIT_BURST: "1000",
      },
    });
    const url = (user: string, query = "") =>
      `ws://127.0.0.1:${server.port}/ws/chat/${user}?room=r${query}`;
    const alice = await TestClient.connect(url("alice"));
    await alice.next("welcome");

    // The kernel spreads connections over the workers. `users` lists the
    // users of the worker that took the connection first, then the others:
    // a Bob listed before Alice is on the other worker.
    let bob: TestClient | undefined;
    let name = "";
    for (let i = 0; i < 40 && bob === undefined; i++) {
      const client = await TestClient.connect(url(`bob${i}`));
      const users = (await client.next("welcome")).users as string[];
      assert.ok(users.includes("alice"), `alice missing from ${users}`);
      if (users.indexOf(`bob${i}`) < users.indexOf("alice")) {
        bob = client;
        name = `bob${i}`;
      } else {
        await client.close();
      }
    }
    assert.ok(bob !== undefined, "no connection landed on the second worker");

    alice.sendJson({ type: "message", room: "r", message: "hi from alice" });
    const first = await bob.next((f) => f.message === "hi from alice");
    bob.sendJson({ type: "message", room: "r", message: "hi from bob" });
    const second = await alice.next((f) => f.message === "hi from bob");
    // One id sequence for the room across both workers.
    assert.ok((second.id as number) > (first.id as number));

    // Private messages and unique names reach across workers too.
    alice.sendJson({ type: "private", to: name, message: "psst" });
    const secret = await bob.next((f) => f.type === "private");
    assert.equal(secret.message, "psst");
    assert.equal(secret.username, "alice");
    const twin = await TestClient.connect(url("alice"));
    assert.equal((await twin.closed).code, 4009);

    // Bob leaves; what Alice says meanwhile comes back on any worker.
    await bob.close();
    const missed = Array.from({ length: 20 }, (_, i) => `m${i + 1}`);
    for (const message of missed) alice.sendJson({ type: "message", room: "r", message });
    await alice.next((f) => f.message === "m20");
    const back = await TestClient.connect(url(name, `&since=${second.id}`));
    const welcome = await back.next("welcome");
    assert.equal(welcome.recovered, true);
    const history = welcome.history as Frame[];
    assert.deepEqual(history.filter((f) => f.type === "message").map((f) => f.message), missed);

    // SIGTERM: every worker closes its sockets and its engine, and the process exits.
    server.kill("SIGTERM");
    const [a, b] = await Promise.all([alice.closed, back.closed]);
    assert.equal(a.code, 1001);
    assert.equal(b.code, 1001);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), 15_000);
    });
    const status = await Promise.race([server.status, late]);
    clearTimeout(timer);
    assert.ok(status !== undefined, "still running 15 s after SIGTERM");
    assert.equal(status.code, 0, server.lines.join("\n"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
