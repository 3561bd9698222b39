import assert from "node:assert/strict";
import { ConnectionManager } from "../chat/connection_manager.ts";
import { userChannel } from "../chat/engines/engine.ts";
import { RedisEngine } from "../chat/engines/redis.ts";
import { CHANNEL_OVERHEAD, PublishMarks } from "../chat/engines/redis_bounds.ts";
import type { RedisEngineOptions } from "../chat/engines/redis_options.ts";
import { RedisClient } from "../chat/engines/redis_client.ts";
import type { RedisReply } from "../chat/engines/redis_resp.ts";
import { payload, range, startRecorded, store } from "./helpers/engine_contract.ts";
import { eventually } from "./helpers/eventually.ts";
import { FakeClock, FakeScheduler, FakeSocket, settle } from "./helpers/fakes.ts";
import { ignoreRedisTests, type RedisServer, startRedis } from "./helpers/redis_server.ts";

const ignore = ignoreRedisTests();
const FAST_RECONNECT = { minDelayMs: 10, maxDelayMs: 200 };
const bytes = (text: string) => new TextEncoder().encode(text).length;

/** A started engine on fake time, so a test moves the sweep along. */
async function started(url: string, options: RedisEngineOptions = {}) {
  const clock = new FakeClock(Date.now());
  const scheduler = new FakeScheduler(clock);
  const engine = new RedisEngine({ url, reconnect: FAST_RECONNECT, clock, scheduler, ...options });
  const recorded = await startRecorded(engine);
  return { ...recorded, engine, clock, scheduler };
}

/** A plain client for looking at the keys. */
async function admin(redis: RedisServer): Promise<RedisClient> {
  const client = new RedisClient({ url: redis.url, reconnect: false });
  await client.connect();
  return client;
}

/** Every key matching the pattern. */
async function scan(client: RedisClient, pattern = "*"): Promise<string[]> {
  const keys: string[] = [];
  let cursor = "0";
  do {
    const reply = await client.command(["SCAN", cursor, "MATCH", pattern, "COUNT", 1000]);
    const [next, page] = reply as [string, string[]];
    cursor = next;
    keys.push(...page);
  } while (cursor !== "0");
  return keys;
}

async function usedMemory(client: RedisClient): Promise<number> {
  const info = String(await client.command(["INFO", "memory"]));
  return Number(/used_memory:(\d+)/.exec(info)?.[1]);
}

async function number(client: RedisClient, command: (string | number)[]): Promise<number> {
  const reply: RedisReply = await client.command(command);
  return reply === null ? 0 : Number(reply);
}

/**
 * What the counter should say, recomputed from the streams: their payloads'
 * UTF-8 bytes plus the overhead of each channel in the activity set; and
 * each channel's share as the hash should hold it.
 */
async function recount(client: RedisClient, prefix = "chat:") {
  const shares = new Map<string, number>();
  const channels = await client.command(["ZRANGE", `${prefix}activity`, 0, -1]) as string[];
  for (const channel of channels) {
    const entries = await client.command(["XRANGE", `${prefix}stream:${channel}`, "-", "+"]);
    let share = CHANNEL_OVERHEAD;
    for (const [, fields] of entries as [string, string[]][]) {
      share += bytes(fields[fields.indexOf("p") + 1] ?? "");
    }
    shares.set(channel, share);
  }
  const total = [...shares.values()].reduce((a, b) => a + b, 0);
  return { total, shares };
}

Deno.test("publish marks throttle each channel, and a clock set back never stops them", () => {
  const marks = new PublishMarks(5_000);
  assert.deepEqual(marks.due("a", 10_000), { touch: true, renew: true });
  assert.deepEqual(marks.due("a", 10_999), { touch: false, renew: false });
  assert.deepEqual(marks.due("a", 11_000), { touch: true, renew: false });
  assert.deepEqual(marks.due("b", 11_000), { touch: true, renew: true });
  assert.deepEqual(marks.due("a", 15_000), { touch: true, renew: true });
  assert.deepEqual(marks.due("a", 1_000), { touch: true, renew: true });
  assert.deepEqual(marks.due("a", 1_500), { touch: false, renew: false });
});

Deno.test({ name: "redis engine keeps its store bounded", ignore }, async (t) => {
  await using redis = await startRedis();
  await using client = await admin(redis);

  await t.step("room churn keeps the counter, the keys and used_memory bounded", async () => {
    const max = 20_000;
    const e = await started(redis.url, { historyMaxBytes: max, keyPrefix: "churn:" });
    await using _ = e.engine;
    const before = await usedMemory(client);
    for (const batch of range(0, 59)) {
      await Promise.all(
        range(1, 50).map((i) => {
          const room = `churn-${batch}-${i}`;
          return store(e.engine, room, payload(room, "x".repeat(100)));
        }),
      );
    }
    assert.ok(e.engine.stats().storedBytes <= max, `stats: ${e.engine.stats().storedBytes}`);
    assert.ok(e.engine.stats().evictions >= 2900, `evictions: ${e.engine.stats().evictions}`);
    const stored = await number(client, ["GET", "churn:stored_bytes"]);
    assert.ok(stored <= max, `counter: ${stored}`);
    // Each channel costs at least its overhead and one payload of ~200 bytes.
    const keys = await scan(client, "churn:*");
    assert.ok(keys.length <= 2 * (max / 300) + 3, `keys: ${keys.length}`);
    // 3000 channels of a stream and a counter each take several MB.
    const grown = (await usedMemory(client)) - before;
    assert.ok(grown < 1_000_000, `used_memory grew by ${grown} bytes`);
  });

  await t.step("the counter is exact after trims, evictions and deletions", async () => {
    const e = await started(redis.url, {
      historyLimit: 100,
      historyMaxBytes: 60_000,
      roomTtlS: 60,
    });
    await using _ = e.engine;
    // Multi-byte text: the budget counts bytes, not characters.
    const text = (i: number) => `é 日本 😀 ${i} `.repeat(1 + (i % 7));
    for (const i of range(1, 150)) await store(e.engine, "long", payload("long", text(i)));
    for (const i of range(1, 300)) {
      const room = `room${i % 30}`;
      await store(e.engine, room, payload(room, text(i)));
    }
    assert.ok(e.engine.stats().evictions > 0, "the budget was reached");
    e.clock.time += 30_000;
    for (const i of range(1, 5)) await store(e.engine, "fresh", payload("fresh", text(i)));
    e.scheduler.advance(40_000);
    await eventually("the idle channels swept", () => e.engine.stats().expiredChannels > 0);
    const { total, shares } = await recount(client);
    assert.deepEqual([...shares.keys()], ["fresh"]);
    assert.equal(await number(client, ["GET", "chat:stored_bytes"]), total);
    assert.equal(e.engine.stats().storedBytes, total);
    assert.equal(await number(client, ["HGET", "chat:channel_bytes", "fresh"]), total);
    assert.equal(await number(client, ["HLEN", "chat:channel_bytes"]), 1);
  });

  await t.step(
    "a channel whose stream Redis expired is evicted whole and counted out",
    async () => {
      const e = await started(redis.url, { historyMaxBytes: 5_000, keyPrefix: "lost:" });
      await using _ = e.engine;
      await store(e.engine, "expired", payload("expired", "gone by itself"));
      // As Redis expiring the stream after HISTORY_TTL_S would.
      await client.command(["DEL", "lost:stream:expired"]);
      for (const i of range(1, 40)) {
        e.clock.time += 1;
        await store(e.engine, "busy", payload("busy", `b${i}`.padEnd(200)));
      }
      assert.equal(await client.command(["ZSCORE", "lost:activity", "expired"]), null);
      const { total } = await recount(client, "lost:");
      assert.equal(await number(client, ["GET", "lost:stored_bytes"]), total);
      assert.ok(total <= 5_000, `total: ${total}`);
    },
  );

  await t.step("the activity score moves once a second, and at once for a new life", async () => {
    const e = await started(redis.url, { keyPrefix: "act:" });
    await using _ = e.engine;
    const score = async () => Number(await client.command(["ZSCORE", "act:activity", "a"]));
    const start = e.clock.time;
    await store(e.engine, "a", payload("a", "1"));
    e.clock.time += 999;
    await store(e.engine, "a", payload("a", "2"));
    assert.equal(await score(), start);
    e.clock.time += 1;
    await store(e.engine, "a", payload("a", "3"));
    assert.equal(await score(), start + 1000);
    // Keys Redis expired on their own (no sweep ran): the channel starts again at
    // offset 1, scored and charged its overhead once, its old share forgotten.
    await client.command(["DEL", "act:seq:a", "act:stream:a"]);
    await client.command(["ZREM", "act:activity", "a"]);
    e.clock.time += 1;
    assert.equal((await store(e.engine, "a", payload("a", "4"))).offset, 1);
    assert.equal(await score(), start + 1001);
    const { total, shares } = await recount(client, "act:");
    assert.equal(await number(client, ["GET", "act:stored_bytes"]), total);
    assert.equal(await number(client, ["HGET", "act:channel_bytes", "a"]), shares.get("a"));
  });

  await t.step("the stream is trimmed past the limit and counted while it is", async () => {
    const e = await started(redis.url, { historyLimit: 100, keyPrefix: "trim:" });
    await using _ = e.engine;
    for (const i of range(1, 400)) await store(e.engine, "t", payload("t", `é${i}`));
    const length = await number(client, ["XLEN", "trim:stream:t"]);
    assert.ok(length >= 100 && length <= 110, `kept: ${length}`);
    const { total } = await recount(client, "trim:");
    assert.equal(await number(client, ["GET", "trim:stored_bytes"]), total);
  });
});

Deno.test({ name: "redis engine deletes idle channels whole", ignore }, async (t) => {
  await using redis = await startRedis();
  await using client = await admin(redis);

  await t.step("the sweep leaves no key or entry of the channel", async () => {
    // Two processes sweep the same store at once: each channel goes once.
    const a = await started(redis.url, { roomTtlS: 60 });
    await using _a = a.engine;
    const b = await started(redis.url, { roomTtlS: 60 });
    await using _b = b.engine;
    for (const channel of ["gone", userChannel("gone"), "@gone|other"]) {
      await store(a.engine, channel, payload("gone", "old"));
    }
    b.clock.time = a.clock.time += 30_000;
    await store(b.engine, "kept", payload("kept", "recent"));
    a.scheduler.advance(40_000);
    b.scheduler.advance(40_000);
    const swept = () => a.engine.stats().expiredChannels + b.engine.stats().expiredChannels;
    await eventually("both sweeps ran", async () => {
      await settle();
      return swept() >= 3 && (await scan(client, "*gone*")).length === 0;
    });
    assert.equal(swept(), 3, "each channel deleted once");
    assert.equal(await client.command(["ZSCORE", "chat:activity", "gone"]), null);
    assert.equal(await number(client, ["HEXISTS", "chat:channel_bytes", "gone"]), 0);
    const { total } = await recount(client);
    assert.equal(await number(client, ["GET", "chat:stored_bytes"]), total);
    assert.equal(bytes(payload("kept", "recent")) + CHANNEL_OVERHEAD, total);
  });

  await t.step("a subscriber gets the offsets of a deleted channel's new life", async () => {
    const e = await started(redis.url, { roomTtlS: 60, keyPrefix: "life:" });
    await using _ = e.engine;
    e.engine.subscribe("again");
    for (const i of range(1, 3)) await store(e.engine, "again", payload("again", `old${i}`));
    await eventually("the first life", () => e.offsets("again").length === 3);
    e.scheduler.advance(70_000);
    await eventually("deleted", () => e.engine.stats().expiredChannels === 1);
    for (const i of range(1, 2)) await store(e.engine, "again", payload("again", `new${i}`));
    await eventually("the second life", () => e.offsets("again").length === 5);
    assert.deepEqual(e.offsets("again"), [1, 2, 3, 1, 2]);
  });
});

Deno.test({ name: "every key the redis engine writes has a TTL", ignore }, async (t) => {
  await using redis = await startRedis();
  await using client = await admin(redis);
  /** Keys without a TTL; the epoch alone is meant to stay. */
  const permanent = async () => {
    const keys = await scan(client);
    const ttls = await Promise.all(keys.map((key) => number(client, ["PTTL", key])));
    return keys.filter((key, i) => ttls[i] === -1 && !key.endsWith(":epoch"));
  };

  await t.step("one user chatting in 59 rooms and leaving leaves no permanent key", async () => {
    const manager = new ConnectionManager({
      engine: new RedisEngine({ url: redis.url, reconnect: FAST_RECONNECT }),
      rateLimitPerS: 1000,
      rateLimitBurst: 1000,
      roomsPerIpPerMin: 1000,
    });
    await using _ = manager;
    await manager.ready();
    const socket = new FakeSocket();
    const conn = manager.connect(socket, { username: "Roamer", room: "lobby" });
    await eventually("welcome", () => socket.framesOf("welcome").length === 1);
    for (const i of range(1, 59)) {
      conn.receive(JSON.stringify({ type: "join", room: `r${i}` }));
      await eventually(`joined r${i}`, () => socket.framesOf("joined").length === i);
      // A message, as join and leave notices are not stored: the room gets its keys.
      conn.receive(JSON.stringify({ type: "message", room: `r${i}`, message: "hi" }));
      await eventually(`said in r${i}`, () => socket.framesOf("message").length === i);
      conn.receive(JSON.stringify({ type: "leave", room: `r${i}` }));
    }
    await eventually("left every room", () => socket.framesOf("left").length === 59);
    assert.ok((await scan(client, "chat:seq:r*")).length >= 59, "the rooms have keys");
    assert.deepEqual(await permanent(), []);
    conn.closed(1000);
  });

  await t.step("with HISTORY_TTL_S the stream lives that long and the counter longer", async () => {
    const e = await started(redis.url, { historyTtlS: 60, roomTtlS: 3600, keyPrefix: "ttl:" });
    await using _ = e.engine;
    await store(e.engine, "brief", payload("brief", "soon gone"));
    const stream = await number(client, ["PTTL", "ttl:stream:brief"]);
    const seq = await number(client, ["PTTL", "ttl:seq:brief"]);
    // The TTL and at most a tenth more: renewals skip publishes in between.
    assert.ok(stream > 0 && stream <= 66_000, `stream: ${stream}`);
    assert.ok(seq > 3_600_000, `seq: ${seq}`);
    assert.deepEqual(await permanent(), []);
  });

  await t.step("TTLs are renewed only when due, but a key a publish creates gets one", async () => {
    const e = await started(redis.url, { roomTtlS: 60, keyPrefix: "renew:" });
    await using _ = e.engine;
    const ttl = (key: string) => number(client, ["PTTL", `renew:${key}:r`]);
    await store(e.engine, "r", payload("r", "one"));
    // As if the TTLs had run down since.
    for (const key of ["seq", "stream"]) await client.command(["PEXPIRE", `renew:${key}:r`, 5_000]);
    await store(e.engine, "r", payload("r", "two"));
    assert.ok(await ttl("seq") <= 5_000 && await ttl("stream") <= 5_000, "renewed too soon");
    // A tenth of the margin past roomTtl (two sweep intervals of 6 s).
    e.clock.time += 1_200;
    await store(e.engine, "r", payload("r", "three"));
    assert.ok(await ttl("seq") > 60_000 && await ttl("stream") > 60_000, "renewed when due");
    // A stream Redis expired, then a whole channel, come back with TTLs at once.
    await client.command(["DEL", "renew:stream:r"]);
    await store(e.engine, "r", payload("r", "four"));
    assert.ok(await ttl("stream") > 60_000, `stream: ${await ttl("stream")}`);
    await client.command(["DEL", "renew:stream:r", "renew:seq:r"]);
    assert.equal((await store(e.engine, "r", payload("r", "five"))).offset, 1);
    assert.ok(await ttl("seq") > 60_000 && await ttl("stream") > 60_000, "a new life's TTLs");
    assert.deepEqual(await permanent(), []);
  });
});
