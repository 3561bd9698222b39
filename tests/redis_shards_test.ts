import assert from "node:assert/strict";
import { fnv1a64, jumpHash, shardOf } from "../chat/engines/jump_hash.ts";
import { RedisClient } from "../chat/engines/redis_client.ts";
import { ShardedRedisEngine, type ShardedRedisOptions } from "../chat/engines/redis_shards.ts";
import {
  payload,
  type Started,
  startRecorded,
  store,
  testEngineContract,
} from "./helpers/engine_contract.ts";
import { eventually } from "./helpers/eventually.ts";
import type { Frame } from "./helpers/fakes.ts";
import { ignoreRedisTests, type RedisServer, startRedis } from "./helpers/redis_server.ts";
import { type ServerProcess, spawnServer } from "./helpers/server_process.ts";
import { TestClient } from "./helpers/ws_client.ts";

const ignore = ignoreRedisTests();
const FAST_RECONNECT = { minDelayMs: 10, maxDelayMs: 200 };
const SHARDS = 3;

/** `count` channel names, the same on every run. */
function names(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `room-${i}`);
}

Deno.test("jump consistent hashing places channels stably, evenly and moves few when a shard is added", async (t) => {
  await t.step("matches the published FNV-1a 64 and jump hash vectors", () => {
    assert.equal(fnv1a64(""), 0xcbf29ce484222325n);
    assert.equal(fnv1a64("a"), 0xaf63dc4c8601ec8cn);
    assert.equal(fnv1a64("foobar"), 0x85944171f73967e8n);
    const vectors: [bigint, number, number][] = [
      [1n, 1, 0],
      [42n, 57, 43],
      [0xDEAD10CCn, 1, 0],
      [0xDEAD10CCn, 666, 361],
      [256n, 1024, 520],
      [18446744073709551615n, 128, 92],
      [128n, 100_000_000, 38172097],
    ];
    for (const [key, buckets, bucket] of vectors) {
      assert.equal(jumpHash(key, buckets), bucket, `jumpHash(${key}, ${buckets})`);
    }
  });

  await t.step("a channel lands on the same shard on every call and every deploy", () => {
    // Pinned: a change here would move live channels away from their history.
    const placed = ["lobby", "general", "@alice|bob", "~alice", "日本", "room-42"]
      .map((channel) => shardOf(channel, SHARDS));
    assert.deepEqual(placed, [2, 1, 2, 1, 0, 1]);
    for (const channel of names(100)) assert.equal(shardOf(channel, 1), 0);
  });

  await t.step("10,000 channels over 3 shards: each holds a third, within 5%", () => {
    const counts = new Array<number>(SHARDS).fill(0);
    for (const channel of names(10_000)) counts[shardOf(channel, SHARDS)]!++;
    for (const count of counts) {
      assert.ok(Math.abs(count - 10_000 / SHARDS) < 10_000 / SHARDS * 0.05, `${counts}`);
    }
  });

  await t.step("a fourth shard takes about a quarter of the channels and moves no others", () => {
    const channels = names(10_000);
    const moved = channels.filter((c) => shardOf(c, SHARDS) !== shardOf(c, SHARDS + 1));
    assert.ok(moved.length > 2000 && moved.length < 3000, `moved ${moved.length}`);
    for (const channel of moved) assert.equal(shardOf(channel, SHARDS + 1), SHARDS, channel);
  });

  await t.step("refuses a shard count that is not a positive integer", () => {
    for (const buckets of [0, -1, 1.5, NaN]) {
      assert.throws(() => jumpHash(1n, buckets), RangeError);
    }
  });
});

/** The first channel name of the form `${stem}-${i}` that lives on each shard. */
function channelPerShard(stem: string): string[] {
  const found: string[] = [];
  for (let i = 0; found.filter(Boolean).length < SHARDS; i++) {
    const channel = `${stem}-${i}`;
    found[shardOf(channel, SHARDS)] ??= channel;
  }
  return found;
}

/** Three throw-away Redis servers. */
async function startShards(
  options: { appendOnly?: boolean } = {},
): Promise<RedisServer[] & AsyncDisposable> {
  const settled = await Promise.allSettled(
    Array.from({ length: SHARDS }, () => startRedis(options)),
  );
  const servers = settled.flatMap((r) => r.status === "fulfilled" ? [r.value] : []);
  const dispose = () => Promise.all(servers.map((s) => s[Symbol.asyncDispose]())).then(() => {});
  const failed = settled.find((r) => r.status === "rejected");
  if (failed !== undefined) {
    await dispose();
    throw failed.reason;
  }
  return Object.assign(servers, { [Symbol.asyncDispose]: dispose });
}

// On one shard: the contract orders publications across channels and bounds
// the bytes of the least recently active channel first, which several shards
// keep per shard only; the tests below cover what several shards change.
testEngineContract({
  name: "sharded redis (one shard)",
  ignore,
  shared: true,
  persistent: true,
  async open() {
    const redis = await startRedis();
    const urls = [redis.url];
    return {
      engine: (spec) => new ShardedRedisEngine({ urls, ...spec, reconnect: FAST_RECONNECT }),
      [Symbol.asyncDispose]: () => redis[Symbol.asyncDispose](),
    };
  },
});

Deno.test("the sharded redis engine refuses a repeated or malformed shard URL", () => {
  const cases: [string, string[], string][] = [
    ["the same server twice", ["redis://127.0.0.1:7001", "redis://127.0.0.1:7001/0"], "Duplicate"],
    ["no URL", [], "No Redis URL"],
    ["a malformed one", ["redis://127.0.0.1:7001", "http://x"], "Invalid Redis URL: http://x"],
  ];
  for (const [what, urls, message] of cases) {
    assert.throws(() => new ShardedRedisEngine({ urls }), TypeError, what);
    assert.throws(() => new ShardedRedisEngine({ urls }), new RegExp(message), what);
  }
});

Deno.test({
  name: "the sharded redis engine does not start without every shard, naming the missing one",
  ignore,
}, async () => {
  await using redis = await startRedis();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const dead = listener.addr.port;
  listener.close();
  const engine = new ShardedRedisEngine({
    urls: [redis.url, `redis://127.0.0.1:${dead}`],
    reconnect: FAST_RECONNECT,
  });
  await assert.rejects(engine.start(() => {}), new RegExp(`127\\.0\\.0\\.1:${dead}`));
  // Not disposed here: start closed the shard that did start, so only this check is connected.
  const check = new RedisClient({ url: redis.url });
  await check.connect();
  try {
    await eventually("the started shard's connections closed", async () => {
      const list = String(await check.command(["CLIENT", "LIST"]));
      return list.trim().split("\n").length === 1;
    });
  } finally {
    await check.close();
  }
});

/** A started sharded engine that records its deliveries; its own process, as it were. */
async function open(urls: string[], options: Partial<ShardedRedisOptions> = {}) {
  const engine = new ShardedRedisEngine({ urls, reconnect: FAST_RECONNECT, ...options });
  const started: Started = await startRecorded(engine);
  return Object.assign(started, {
    engine,
    [Symbol.asyncDispose]: () => engine[Symbol.asyncDispose](),
  });
}

/** Which shards hold a key. */
async function holders(clients: RedisClient[], key: string): Promise<number[]> {
  const found = await Promise.all(clients.map((c) => c.command(["EXISTS", key])));
  return found.flatMap((n, shard) => n === 1 ? [shard] : []);
}

Deno.test({
  name:
    "the sharded redis engine routes channels by hash, keeps presence on the first shard, and " +
    "loses only a down shard's channels",
  ignore,
}, async (t) => {
  await using servers = await startShards();
  const urls = servers.map((s) => s.url);
  await using a = await open(urls);
  await using b = await open(urls);
  const clients = servers.map((s) => new RedisClient({ url: s.url }));
  await Promise.all(clients.map((c) => c.connect()));
  try {
    await t.step(
      "a stored publish lands on the shard its channel hashes to, and only there",
      async () => {
        for (const channel of names(30)) {
          await store(a.engine, channel, payload(channel, "hello"));
          const key = `chat:stream:${channel}`;
          assert.deepEqual(await holders(clients, key), [shardOf(channel, SHARDS)], channel);
        }
      },
    );

    await t.step("stats add up every shard's stored bytes", async () => {
      const stored = await Promise.all(clients.map((c) => c.command(["GET", "chat:stored_bytes"])));
      const total = stored.reduce<number>((sum, n) => sum + Number(n ?? 0), 0);
      assert.ok(total > 0);
      assert.equal(a.engine.stats().storedBytes, total);
    });

    await t.step("historyMaxBytes bounds the shards together, not each one", async () => {
      const max = 30_000;
      await using small = await open(urls, { historyMaxBytes: max, keyPrefix: "small:" });
      for (const channel of names(30)) {
        for (let i = 0; i < 2; i++) await store(small.engine, channel, "x".repeat(1000));
      }
      assert.ok(small.engine.stats().evictions > 0);
      assert.ok(small.engine.stats().storedBytes <= max, `${small.engine.stats().storedBytes}`);
    });

    await t.step("presence and names live on the first shard, seen by every process", async () => {
      a.engine.presence.connect("Alice");
      a.engine.presence.join("lobby", "Alice");
      await eventually(
        "Alice in b's list",
        async () => (await b.engine.presence.users("lobby")).includes("Alice"),
      );
      assert.equal((await b.engine.presence.lookup("alice"))?.username, "Alice");
      assert.deepEqual(await holders(clients, "chat:presence:lobby"), [0]);
    });

    const [, , down] = channelPerShard("live");
    const up = channelPerShard("live").slice(0, 2);
    await t.step(
      "while a shard is down only its channels fail; they come back with it",
      async () => {
        for (const channel of [...up, down!]) b.engine.subscribe(channel);
        await eventually("b follows every channel", async () => {
          for (const channel of [...up, down!]) await store(a.engine, channel, "probe");
          return [...up, down!].every((c) => b.got.some((d) => d.channel === c));
        });
        await servers[2]!.kill9();
        // Partial, not degraded: the other shards' rooms and presence still work.
        await eventually("a partial", () => a.engine.status() === "partial");
        await assert.rejects(a.engine.publish(down!, "lost", { history: true }));
        await assert.rejects(a.engine.history(down!, { limit: 10 }));
        for (const channel of up) {
          const { offset } = await store(a.engine, channel, "during");
          await eventually(
            `b got ${channel}`,
            () => b.got.some((d) => d.channel === channel && d.offset === offset),
          );
        }
        assert.ok((await a.engine.history(up[0]!, { limit: 1 })).publications.length === 1);
        await servers[2]!.restart();
        await eventually("a ok", () => a.engine.status() === "ok", { timeoutMs: 5000 });
        await eventually("b ok", () => b.engine.status() === "ok", { timeoutMs: 5000 });
        const back = await store(a.engine, down!, "after");
        await eventually(
          "b got the back shard's channel again",
          () => b.got.some((d) => d.channel === down && d.payload === "after"),
        );
        assert.equal(back.epoch, a.engine.epoch);
      },
    );

    await t.step(
      "one epoch for all shards, the same on every process, new when one lost its data",
      async () => {
        // The restarted shard ran without persistence: its offsets began again.
        await eventually("b saw the new epoch", async () => {
          await b.engine.history(down!, { limit: 1 });
          return b.engine.epoch === a.engine.epoch;
        });
        const before = a.engine.epoch;
        await servers[1]!.restart();
        await eventually("a back", () => a.engine.status() === "ok", { timeoutMs: 5000 });
        const moved = await store(a.engine, up[1]!, "new epoch");
        assert.notEqual(moved.epoch, before);
        assert.equal(moved.epoch, a.engine.epoch);
        assert.match(a.engine.epoch, /^[\w-]{1,64}$/);
      },
    );

    await t.step("the first shard down is degraded: presence and names are there", async () => {
      await servers[0]!.kill9();
      await eventually("a degraded", () => a.engine.status() === "degraded");
      await servers[0]!.restart();
      await eventually("a ok", () => a.engine.status() === "ok", { timeoutMs: 5000 });
    });
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
});

/** A `deno run main.ts` process on the sharded redis engine. */
function startInstance(redisUrl: string): Promise<ServerProcess> {
  return spawnServer({
    args: ["run", "-A", "--unstable-kv", "main.ts"],
    env: {
      PORT: "0",
      HOST: "127.0.0.1",
      CHAT_ENGINE: "redis",
      REDIS_URL: redisUrl,
      // The "listening" line that carries the port is logged at info.
      LOG_LEVEL: "info",
      PRESENCE_TTL_S: "3",
      RATE_LIMIT_PER_S: "500",
      RATE_LIMIT_BURST: "500",
    },
    timeoutMs: 20_000,
  });
}

/** Both processes, or neither: one that started is stopped when the other failed. */
async function startInstances(redisUrl: string): Promise<ServerProcess[]> {
  const started = await Promise.allSettled([startInstance(redisUrl), startInstance(redisUrl)]);
  const failed = started.find((r) => r.status === "rejected");
  const up = started.flatMap((r) => r.status === "fulfilled" ? [r.value] : []);
  if (failed === undefined) return up;
  for (const server of up) await server[Symbol.asyncDispose]();
  throw failed.reason;
}

async function health(server: ServerProcess): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${server.port}/healthz`);
  const status = (await res.json()).status;
  assert.equal(res.status, status === "degraded" ? 503 : 200, status);
  return status;
}

/** A user in every room, on one process: the first room by URL, the others by `join`. */
async function enter(
  server: ServerProcess,
  name: string,
  rooms: { room: string; since?: number; epoch?: string }[],
): Promise<TestClient> {
  const [first, ...others] = rooms;
  const query = first!.since === undefined ? "" : `&since=${first!.since}&epoch=${first!.epoch}`;
  const url = `ws://127.0.0.1:${server.port}/ws/chat/${name}?room=${first!.room}${query}`;
  const client = await TestClient.connect(url);
  await client.next("welcome");
  for (const other of others) {
    client.sendJson({ type: "join", ...other });
    await client.next((f) => f.type === "joined" && f.room === other.room);
  }
  return client;
}

/** The chat messages of a room a client got, by text, live or from history. */
function said(client: TestClient, room: string): string[] {
  const live = client.frames.filter((f) => f.type === "message" && f.room === room);
  const replayed = client.frames
    .filter((f) => (f.type === "welcome" || f.type === "joined") && f.room === room)
    .flatMap((f) => (f.history as Frame[]).filter((h) => h.type === "message"));
  return [...replayed, ...live].map((f) => String(f.message));
}

/** The newest message id of a room a client saw. */
function lastId(client: TestClient, room: string): number {
  const ids = client.frames.filter((f) => f.room === room && typeof f.id === "number")
    .map((f) => f.id as number);
  return Math.max(0, ...ids);
}

Deno.test({
  name: "two server processes on three Redis shards: chat, private messages, recovery, and a " +
    "shard's outage that only its rooms notice",
  ignore,
}, async (t) => {
  await using servers = await startShards({ appendOnly: true });
  const [a, b] = await startInstances(servers.map((s) => s.url).join(","));
  await using _a = a!;
  await using _b = b!;
  const rooms = channelPerShard("hall");
  const clients: TestClient[] = [];
  try {
    const alice = await enter(a!, "Alice", rooms.map((room) => ({ room })));
    clients.push(alice);
    let bob = await enter(b!, "Bob", rooms.map((room) => ({ room })));
    clients.push(bob);
    const epoch = String(bob.frames.find((f) => f.type === "welcome")!.epoch);

    await t.step("users on two processes chat in a room on every shard", async () => {
      assert.equal(alice.frames.find((f) => f.type === "welcome")!.epoch, epoch);
      for (const room of rooms) alice.sendJson({ type: "message", room, message: `hi ${room}` });
      await eventually(
        "Bob got every room's message",
        () => rooms.every((room) => said(bob, room).includes(`hi ${room}`)),
      );
    });

    await t.step("a private message crosses processes", async () => {
      alice.sendJson({ type: "private", to: "Bob", message: "psst" });
      const got = await bob.next((f) => f.type === "private" && f.message === "psst");
      assert.equal(got.username, "Alice");
    });

    await t.step("a user who drops recovers with since in the rooms of every shard", async () => {
      const seen = rooms.map((room) => ({ room, since: lastId(bob, room), epoch }));
      await bob.close();
      await alice.next((f) => f.type === "system" && f.event === "leave" && f.user === "Bob");
      for (const room of rooms) {
        for (let i = 0; i < 3; i++) {
          alice.sendJson({ type: "message", room, message: `missed ${i}` });
        }
      }
      await eventually(
        "Alice's acknowledgements",
        () =>
          rooms.every((room) =>
            said(alice, room).filter((m) => m.startsWith("missed")).length === 3
          ),
      );
      bob = await enter(a!, "Bob", seen);
      clients.push(bob);
      for (const room of rooms) {
        const start = bob.frames.find((f) =>
          (f.type === "welcome" || f.type === "joined") && f.room === room
        )!;
        assert.equal(start.recovered, true, room);
        assert.deepEqual(said(bob, room), ["missed 0", "missed 1", "missed 2"], room);
      }
    });

    const [up0, up1, down] = rooms as [string, string, string];
    await t.step(
      "a killed shard fails only its rooms, which work again once it is back",
      async () => {
        // Bob is on A now: Carol on B watches across processes.
        const carol = await enter(b!, "Carol", rooms.map((room) => ({ room })));
        clients.push(carol);
        await servers[2]!.kill9();
        for (const server of [a!, b!]) {
          // 200 and "partial": a load balancer keeps the process for the other rooms.
          await eventually("partial", async () => await health(server) === "partial");
        }
        alice.sendJson({ type: "message", room: down, message: "lost", cid: "lost" });
        const refused = await alice.next((f) => f.type === "error" && f.cid === "lost");
        assert.equal(refused.code, "unavailable");
        for (const room of [up0, up1]) {
          alice.sendJson({ type: "message", room, message: "still here" });
        }
        await eventually(
          "Carol got the other shards' rooms",
          () => [up0, up1].every((room) => said(carol, room).includes("still here")),
        );
        await servers[2]!.restart();
        for (const server of [a!, b!]) {
          await eventually("ok", async () => await health(server) === "ok", { timeoutMs: 10_000 });
        }
        alice.sendJson({ type: "message", room: down, message: "back" });
        await eventually(
          "Carol got the returned shard's room",
          () => said(carol, down).includes("back"),
        );
      },
    );
  } catch (error) {
    console.error(`A:\n${a!.lines.slice(-20).join("\n")}\nB:\n${b!.lines.slice(-20).join("\n")}`);
    throw error;
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
});
