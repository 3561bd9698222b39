/**
 * Redis's side of the redis engine, on one Redis and sharded over three
 * (`deno task bench --only=shards`): the CPU each redis-server spends per
 * stored message with one or two processes subscribed, what a presence
 * refresh costs per entry, and what routing a call to its shard costs the
 * chat process. The figures of docs/scale-out.md's capacity arithmetic.
 *
 * The engines run in this process, as a chat process would run them; each
 * redis-server's CPU is read from `/proc`.
 *
 * @module
 */

import type { Engine } from "../chat/engines/engine.ts";
import { shardOf } from "../chat/engines/jump_hash.ts";
import { RedisEngine } from "../chat/engines/redis.ts";
import { ShardedRedisEngine } from "../chat/engines/redis_shards.ts";
import { type RedisServer, startRedis } from "../tools/redis_server.ts";
import { cpuSeconds, findProcess } from "./processes.ts";

/** The sizes of the shard measurements. */
export interface ShardBenchOptions {
  /** Stored publishes per configuration. */
  messages: number;
  /** Channels they are spread over, round robin. */
  channels: number;
  /** Publishes awaiting their reply at once. */
  inFlight: number;
  /** The length of each payload. */
  bytes: number;
  /** Presence: users online, each in two rooms of 100. */
  presenceUsers: number;
  /** Presence: refreshes measured. */
  presenceRounds: number;
  /** Progress lines. */
  log: (line: string) => void;
}

/** The sizes: 30,000 publishes of 150 bytes to 300 channels, 20,000 users. */
export const SHARD_BENCH: Readonly<Omit<ShardBenchOptions, "log">> = Object.freeze({
  messages: 30_000,
  channels: 300,
  inFlight: 64,
  bytes: 150,
  presenceUsers: 20_000,
  presenceRounds: 10,
});

/** One configuration's stored messages. */
export interface ShardRow {
  /** Redis servers the channels are spread over. */
  shards: number;
  /** Engines subscribed to every channel (processes a room is spread over). */
  subscribers: number;
  /** Stored publishes a second, every subscriber having got each. */
  messagesPerS: number;
  /** Redis CPU per message, all shards together. */
  redisUs: number;
  /** Each shard's part of it. */
  shardUs: number[];
}

/** What {@linkcode measureShards} found. */
export interface ShardResult {
  /** Stored messages, one row per configuration. */
  rows: ShardRow[];
  /** Redis CPU per presence entry (a user online, or a membership) per refresh. */
  presenceUs: number;
  /** Entries each refresh renewed. */
  presenceEntries: number;
  /** The chat process's time to route one call to its shard, of three. */
  routeUs: number;
}

/** A running redis-server and its pid, for its CPU. */
interface Shard {
  server: RedisServer;
  pid: number;
}

/** Measures stored messages on 1 and 3 shards, presence refreshes, and routing. */
export async function measureShards(options: ShardBenchOptions): Promise<ShardResult> {
  const shards: Shard[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      const server = await startRedis();
      shards.push({ server, pid: 0 });
      const pid = await findProcess(["redis-server", String(server.port)]);
      if (pid === undefined) throw new Error(`No redis-server process: ${server.port}`);
      shards[i]!.pid = pid;
    }
    const rows: ShardRow[] = [];
    for (const [count, subscribers] of [[1, 1], [1, 2], [3, 1], [3, 2]] as const) {
      const row = await measureMessages(shards.slice(0, count), subscribers, options);
      options.log(
        `  ${count} shard(s), ${subscribers} subscribed: ${Math.round(row.messagesPerS)} ` +
          `messages/s, Redis ${row.redisUs.toFixed(1)} µs each`,
      );
      rows.push(row);
    }
    const presence = await measurePresence(shards[0]!, options);
    return { rows, ...presence, routeUs: measureRoute() };
  } finally {
    await Promise.all(shards.map((s) => s.server[Symbol.asyncDispose]()));
  }
}

/** An engine on the shards: one Redis as `app.ts` makes it, or the sharded one. */
function engineOn(shards: readonly Shard[]): Engine {
  const urls = shards.map((s) => s.server.url);
  return urls.length === 1 ? new RedisEngine({ url: urls[0] }) : new ShardedRedisEngine({ urls });
}

/** Publishes `messages` stored frames and waits until every subscriber got each. */
async function measureMessages(
  shards: readonly Shard[],
  subscribers: number,
  options: ShardBenchOptions,
): Promise<ShardRow> {
  const engines: Engine[] = [];
  let got = 0;
  let allGot = () => {};
  const everyone = options.messages * subscribers;
  try {
    for (let i = 0; i < subscribers; i++) {
      const engine = engineOn(shards);
      engines.push(engine);
      await engine.start(() => {
        if (++got === everyone) allGot();
      });
    }
    // Fresh channels each time: no stream of an earlier configuration is trimmed meanwhile.
    const prefix = `s${shards.length}x${subscribers}-`;
    const channels = Array.from({ length: options.channels }, (_, i) => `${prefix}${i}`);
    for (const engine of engines) for (const channel of channels) engine.subscribe(channel);
    await settle(engines[0]!, channels);
    got = 0;
    const done = new Promise<void>((resolve) => allGot = resolve);
    const before = await Promise.all(shards.map((s) => cpuSeconds(s.pid)));
    const start = performance.now();
    await publishAll(engines[0]!, channels, options);
    await deadline(done, DELIVERY_TIMEOUT_MS, () => `Deliveries missing: ${got} of ${everyone}`);
    const seconds = (performance.now() - start) / 1000;
    const after = await Promise.all(shards.map((s) => cpuSeconds(s.pid)));
    const shardUs = after.map((a, i) => (a - before[i]!) * 1e6 / options.messages);
    return {
      shards: shards.length,
      subscribers,
      messagesPerS: options.messages / seconds,
      redisUs: shardUs.reduce((a, b) => a + b, 0),
      shardUs,
    };
  } finally {
    await Promise.all(engines.map((e) => e[Symbol.asyncDispose]()));
  }
}

/** How long the last deliveries may take after the last publish is acknowledged. */
const DELIVERY_TIMEOUT_MS = 30_000;

/** Resolves with `promise`, or rejects with `message()` after `ms`: a lost delivery ends the run. */
async function deadline(promise: Promise<void>, ms: number, message: () => string): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message())), ms);
  });
  try {
    await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Waits until a publish to every channel came back: every subscription is in place. */
async function settle(engine: Engine, channels: readonly string[]): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 200));
  await Promise.all(channels.map((c) => engine.publish(c, "settle")));
  await new Promise((resolve) => setTimeout(resolve, 200));
}

/** Keeps `inFlight` stored publishes waiting for their reply until `messages` are sent. */
async function publishAll(
  engine: Engine,
  channels: readonly string[],
  options: ShardBenchOptions,
): Promise<void> {
  const payload = JSON.stringify({ type: "message", text: "x".repeat(options.bytes - 30) });
  let next = 0;
  const worker = async () => {
    while (next < options.messages) {
      const n = next++;
      await engine.publish(channels[n % channels.length]!, payload, { history: true });
    }
  };
  await Promise.all(Array.from({ length: options.inFlight }, worker));
}

/**
 * Redis CPU per entry of a presence refresh: `presenceUsers` online, each
 * in two rooms, renewed `presenceRounds` times.
 */
async function measurePresence(
  shard: Shard,
  options: ShardBenchOptions,
): Promise<{ presenceUs: number; presenceEntries: number }> {
  const engine = new RedisEngine({ url: shard.server.url });
  try {
    await engine.start(() => {});
    const { presence } = engine;
    const rooms = Math.ceil(options.presenceUsers / 50);
    for (let u = 0; u < options.presenceUsers; u++) {
      presence.connect(`user${u}`);
      presence.join(`room${u % rooms}`, `user${u}`);
      presence.join(`room${(u + 1) % rooms}`, `user${u}`);
    }
    // Replies come in order on one connection: a lookup answered means what came before is done.
    await presence.lookup("user0");
    const before = await cpuSeconds(shard.pid);
    for (let round = 0; round < options.presenceRounds; round++) {
      engine.presence.refresh();
      await presence.lookup("user0");
    }
    const after = await cpuSeconds(shard.pid);
    const entries = options.presenceUsers * 3;
    return {
      presenceUs: (after - before) * 1e6 / (options.presenceRounds * entries),
      presenceEntries: entries,
    };
  } finally {
    await engine[Symbol.asyncDispose]();
  }
}

/** Microseconds to route one room name to its shard of three. */
function measureRoute(): number {
  const names = Array.from({ length: 1000 }, (_, i) => `room-${i}-${(i * 7919) % 1000}`);
  let sum = 0;
  const rounds = 300;
  // A first pass so the measured ones run optimised code.
  for (const name of names) sum += shardOf(name, 3);
  const start = performance.now();
  for (let r = 0; r < rounds; r++) for (const name of names) sum += shardOf(name, 3);
  const us = (performance.now() - start) * 1000 / (rounds * names.length);
  // The sum is used, so the loop is not optimised away.
  return sum < 0 ? NaN : us;
}
