import assert from "node:assert/strict";
import type { Frame } from "./helpers/fakes.ts";
import { ignoreRedisTests, startRedis } from "./helpers/redis_server.ts";
import { spawnServer } from "./helpers/server_process.ts";
import { TestClient } from "./helpers/ws_client.ts";
import { eventually } from "./helpers/eventually.ts";

const ignore = ignoreRedisTests();
const PRESENCE_TTL_S = 3;
const ROOM = "scale";

/** One `deno run main.ts` process on the redis engine. */
interface Instance extends AsyncDisposable {
  readonly port: number;
  /** A `ws://` URL on this instance. */
  ws(path: string): string;
  /** The engine status from /healthz. */
  health(): Promise<string>;
  /** Kills the process with SIGKILL, as a crash would. */
  kill9(): Promise<void>;
  /** The last log lines, for failure messages. */
  logs(): string;
}

async function startInstance(redisUrl: string): Promise<Instance> {
  const server = await spawnServer({
    args: ["run", "-A", "--unstable-kv", "main.ts"],
    env: {
      PORT: "0",
      HOST: "127.0.0.1",
      CHAT_ENGINE: "redis",
      REDIS_URL: redisUrl,
      // The "listening" line that carries the port is logged at info.
      LOG_LEVEL: "info",
      PRESENCE_TTL_S: String(PRESENCE_TTL_S),
      RATE_LIMIT_PER_S: "500",
      RATE_LIMIT_BURST: "500",
    },
    timeoutMs: 20_000,
  });
  const { port } = server;
  return {
    port,
    ws: (path) => `ws://127.0.0.1:${port}${path}`,
    async health() {
      const res = await fetch(`http://127.0.0.1:${port}/healthz`);
      const body = await res.json();
      return body.status;
    },
    async kill9() {
      server.kill("SIGKILL");
      await server.status;
    },
    logs: () => server.lines.slice(-30).join("\n"),
    async [Symbol.asyncDispose]() {
      // A clean stop first, so the instance removes its presence; SIGKILL after 8 s.
      server.kill("SIGTERM");
      let grace: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<void>((resolve) => grace = setTimeout(resolve, 8000));
      await Promise.race([server.status, late]);
      clearTimeout(grace);
      server.kill("SIGKILL");
      await server.status;
    },
  };
}

const isRoomFrame = (f: Frame) =>
  f.room === ROOM && typeof f.id === "number" && (f.type === "message" || f.type === "system");

function texts(client: TestClient, prefix: string): string[] {
  return client.frames
    .filter((f) => f.type === "message" && String(f.message).startsWith(prefix))
    .map((f) => String(f.message));
}

function notices(client: TestClient, event: string, user: string): Frame[] {
  return client.frames.filter((f) => f.type === "system" && f.event === event && f.user === user);
}

async function usersOf(client: TestClient): Promise<string[]> {
  client.sendJson({ type: "users", room: ROOM });
  const frame = await client.next("users");
  return (frame.users as string[]).toSorted();
}

async function chat(instance: Instance, name: string, query = ""): Promise<TestClient> {
  const client = await TestClient.connect(instance.ws(`/ws/chat/${name}?room=${ROOM}${query}`));
  await client.next("welcome");
  return client;
}

Deno.test({
  name: "two server processes share rooms, private messages, presence and history on Redis",
  ignore,
}, async (t) => {
  await using redis = await startRedis({ appendOnly: true });
  const started = await Promise.allSettled([startInstance(redis.url), startInstance(redis.url)]);
  const [first, second] = started;
  if (first.status === "rejected" || second.status === "rejected") {
    for (const r of started) if (r.status === "fulfilled") await r.value[Symbol.asyncDispose]();
    throw started.find((r) => r.status === "rejected")!.reason;
  }
  await using a = first.value;
  await using b = second.value;
  const clients: TestClient[] = [];
  try {
    const alice = await chat(a, "Alice");
    clients.push(alice);
    const bob = await chat(b, "Bob");
    clients.push(bob);

    await t.step("users on different processes chat in one room", async () => {
      const welcome = bob.frames.find((f) => f.type === "welcome")!;
      assert.deepEqual((welcome.users as string[]).toSorted(), ["Alice", "Bob"]);
      const joined = await alice.next((f) => f.type === "system" && f.user === "Bob");
      assert.equal(joined.event, "join");
      assert.equal(joined.connected_count, 2);

      alice.sendJson({ type: "message", message: "hello from A" });
      const atBob = await bob.next((f) => f.message === "hello from A");
      const echo = await alice.next((f) => f.message === "hello from A");
      assert.equal(atBob.id, echo.id);
      bob.sendJson({ type: "message", message: "hello from B" });
      const atAlice = await alice.next((f) => f.message === "hello from B");
      assert.equal(atAlice.id, (echo.id as number) + 1);

      assert.deepEqual(await usersOf(alice), ["Alice", "Bob"]);
      assert.deepEqual(await usersOf(bob), ["Alice", "Bob"]);
    });

    await t.step("private messages cross processes", async () => {
      alice.sendJson({ type: "private", to: "bob", message: "psst from A" });
      const got = await bob.next((f) => f.type === "private" && f.message === "psst from A");
      assert.equal(got.username, "Alice");
      assert.equal(got.to, "Bob");
      const ack = await alice.next((f) => f.type === "private" && f.message === "psst from A");
      assert.equal(ack.id, got.id);
      bob.sendJson({ type: "private", to: "Alice", message: "psst from B" });
      const back = await alice.next((f) => f.type === "private" && f.message === "psst from B");
      assert.equal(back.id, (got.id as number) + 1);
      alice.sendJson({ type: "private", to: "Nobody", message: "hello?" });
      const error = await alice.next("error");
      assert.equal(error.code, "user_not_found");
      // Each private frame reached each side once.
      assert.equal(bob.frames.filter((f) => f.message === "psst from A").length, 1);
      assert.equal(alice.frames.filter((f) => f.message === "psst from A").length, 1);
    });

    await t.step("names stay unique across processes", async () => {
      await using twin = await TestClient.connect(b.ws(`/ws/chat/alice?room=${ROOM}`));
      assert.equal((await twin.closed).code, 4009);
      alice.sendJson({ type: "rename", name: "bob" });
      assert.equal((await alice.next("error")).code, "name_taken");
      alice.sendJson({ type: "rename", name: "Alicia" });
      await bob.next((f) => f.type === "system" && f.event === "rename" && f.user === "Alicia");
      assert.deepEqual(await usersOf(bob), ["Alicia", "Bob"]);
      alice.sendJson({ type: "rename", name: "Alice" });
      await bob.next((f) => f.type === "system" && f.event === "rename" && f.user === "Alice");
      assert.deepEqual(await usersOf(bob), ["Alice", "Bob"]);
      await using anonA = await TestClient.connect(a.ws(`/ws/chat?room=elsewhere`));
      const first = await anonA.next("welcome");
      await using anonB = await TestClient.connect(b.ws(`/ws/chat?room=elsewhere`));
      const second = await anonB.next("welcome");
      assert.notEqual(first.username, second.username);
    });

    await t.step("a user who drops from one process recovers on the other with since", async () => {
      const last = Math.max(...bob.frames.filter(isRoomFrame).map((f) => f.id as number));
      await bob.close();
      await alice.next((f) => f.type === "system" && f.event === "leave" && f.user === "Bob");
      for (let i = 0; i < 20; i++) alice.sendJson({ type: "message", message: `missed ${i}` });
      await eventually("20 acknowledgements", () => texts(alice, "missed ").length === 20);

      const back = await TestClient.connect(a.ws(`/ws/chat/Bob?room=${ROOM}&since=${last}`));
      clients.push(back);
      const welcome = await back.next("welcome");
      assert.equal(welcome.recovered, true);
      const history = welcome.history as Frame[];
      assert.deepEqual(
        history.map((f) => f.id),
        history.map((_, i) => last + 1 + i),
        "every id after since, once, in order",
      );
      assert.deepEqual(
        history.filter((f) => f.type === "message").map((f) => f.message),
        Array.from({ length: 20 }, (_, i) => `missed ${i}`),
      );
      const newest = history.at(-1)!.id as number;
      alice.sendJson({ type: "message", message: "after recovery" });
      const live = await back.next((f) => f.message === "after recovery");
      assert.ok((live.id as number) > newest);
      const replayed = back.frames.filter((f) => isRoomFrame(f) && (f.id as number) <= newest);
      assert.deepEqual(replayed, [], "nothing of the history arrives again live");
      // Bob's leave (from B) and join (on A) were each announced once.
      await eventually("the join notice at Alice", () => notices(alice, "join", "Bob").length > 1);
      assert.equal(notices(alice, "leave", "Bob").length, 1);
      assert.equal(notices(alice, "join", "Bob").length, 2, "one per join, not per process");
    });

    await t.step(
      "Redis killed and restarted under traffic loses nothing acknowledged",
      async () => {
        const carol = await chat(b, "Carol");
        clients.push(carol);
        let sending = true;
        let sent = 0;
        const sender = (async () => {
          while (sending) {
            alice.sendJson({ type: "message", message: `load ${sent++}` });
            await new Promise((resolve) => setTimeout(resolve, 20));
          }
        })();
        try {
          await eventually("acknowledged traffic", () => texts(alice, "load ").length >= 10);
          await redis.kill9();
          await eventually("A degraded", async () => await a.health() === "degraded");
          await eventually("B degraded", async () => await b.health() === "degraded");
          await eventually(
            "refused sends",
            () => alice.frames.some((f) => f.type === "error" && f.code === "unavailable"),
          );
          await redis.restart();
          await eventually("A ok", async () => await a.health() === "ok", { timeoutMs: 15_000 });
          await eventually("B ok", async () => await b.health() === "ok", { timeoutMs: 15_000 });
          const before = texts(alice, "load ").length;
          await eventually(
            "traffic after the restart",
            () => texts(alice, "load ").length > before + 10,
          );
        } finally {
          sending = false;
          await sender;
        }
        const acked = alice.frames.filter((f) =>
          f.type === "message" && f.username === "Alice" && String(f.message).startsWith("load ")
        );
        const ackedIds = acked.map((f) => f.id as number);
        const roomIds = (client: TestClient) =>
          client.frames.filter((f) => f.type === "message" && isRoomFrame(f))
            .map((f) => f.id as number);
        const missing = (client: TestClient) => {
          const have = new Set(roomIds(client));
          return ackedIds.filter((id) => !have.has(id));
        };
        // Counting is not enough: a send refused mid-flight may still have been stored.
        await eventually("every acknowledged message at Carol", () => missing(carol).length === 0)
          .catch(() => undefined);
        for (const [who, client] of [["Carol on B", carol], ["Alice on A", alice]] as const) {
          const ids = roomIds(client);
          for (let i = 1; i < ids.length; i++) {
            assert.ok(ids[i]! > ids[i - 1]!, `${who}: ids increase: ${ids[i - 1]} then ${ids[i]}`);
          }
          assert.deepEqual(missing(client), [], `${who} got every ack`);
        }
        // The stream kept them too: a reader on B recovers every acknowledged message.
        const since = ackedIds[0]! - 1;
        const reader = await TestClient.connect(b.ws(`/ws/chat/Dave?room=${ROOM}&since=${since}`));
        clients.push(reader);
        const welcome = await reader.next("welcome");
        const stored = new Set((welcome.history as Frame[]).map((f) => f.id as number));
        assert.deepEqual(ackedIds.filter((id) => !stored.has(id)), [], "history has every ack");
        assert.equal(welcome.recovered, true);
      },
    );

    await t.step("a killed process's users leave the presence list within the TTL", async () => {
      const carol = clients.find((c) => c.frames.some((f) => f.username === "Carol"))!;
      assert.deepEqual(await usersOf(carol), ["Alice", "Bob", "Carol", "Dave"]);
      await a.kill9();
      await eventually(
        "Alice and Bob gone from B's list",
        async () => (await usersOf(carol)).join() === "Carol,Dave",
        { timeoutMs: (PRESENCE_TTL_S + 5) * 1000 },
      );
      carol.sendJson({ type: "private", to: "Alice", message: "still there?" });
      assert.equal((await carol.next("error")).code, "user_not_found");
    });
  } catch (error) {
    console.error(`A:\n${a.logs()}\nB:\n${b.logs()}`);
    throw error;
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
});
