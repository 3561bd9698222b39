import assert from "node:assert/strict";
import type { Scheduler } from "../chat/clock.ts";
import { ConnectionManager } from "../chat/connection_manager.ts";
import { sweepIntervalMs } from "../chat/engines/engine.ts";
import { CHANNEL_OVERHEAD_BYTES, MemoryEngine } from "../chat/engines/memory.ts";
import { FakeClock, FakeScheduler, FakeSocket, settle } from "./helpers/fakes.ts";

const encoder = new TextEncoder();
const bytesOf = (s: string) => encoder.encode(s).length;

/** A started engine on fake time, disposed with `await using`. */
async function fakeEngine(options: { historyLimit?: number; historyMaxBytes?: number } = {}) {
  const clock = new FakeClock();
  const scheduler = new FakeScheduler(clock);
  const engine = new MemoryEngine({ roomTtlS: 60, ...options, clock, scheduler });
  await engine.start(() => {});
  return { engine, clock, scheduler };
}

async function offsetOf(engine: MemoryEngine, channel: string, payload: string): Promise<number> {
  const position = await engine.publish(channel, payload, { history: true });
  assert.ok(position !== undefined);
  return position.offset;
}

async function kept(engine: MemoryEngine, channel: string): Promise<number[]> {
  const page = await engine.history(channel, { after: 0, limit: 1000 });
  return page.publications.map((p) => p.offset);
}

const CHANNELS = 120_000;
const tiny = (i: number) => `{"n":${i}}`;

Deno.test("120k channels published to once: the budget keeps only the newest that fit", async () => {
  const max = 1024 * 1024;
  const { engine, scheduler } = await fakeEngine({ historyMaxBytes: max });
  await using _ = engine;
  for (let i = 1; i <= CHANNELS; i++) await offsetOf(engine, `room-${i}`, tiny(i));
  const { storedBytes, evictions } = engine.stats();
  assert.ok(storedBytes <= max, `stored: ${storedBytes}`);
  // Each channel costs its one payload and the overhead: that many fit, no fewer.
  const each = bytesOf(tiny(CHANNELS)) + CHANNEL_OVERHEAD_BYTES;
  assert.ok(engine.channels <= Math.floor(max / (each - 2)), `channels: ${engine.channels}`);
  assert.ok(engine.channels >= Math.floor(max / each), `channels: ${engine.channels}`);
  assert.ok(storedBytes > max - each, `stored: ${storedBytes}`);
  // Every evicted channel lost its one publication and was deleted with its counter.
  assert.equal(evictions, CHANNELS - engine.channels);
  const first = CHANNELS - engine.channels + 1;
  assert.deepEqual(await kept(engine, `room-${first}`), [1]);
  assert.deepEqual(await kept(engine, `room-${CHANNELS}`), [1]);
  const gone = await engine.history(`room-${first - 1}`, { after: 1, limit: 10 });
  assert.deepEqual([gone.position.offset, gone.complete], [0, false]);
  assert.equal(scheduler.intervals, 1);
});

Deno.test("120k channels idle for roomTtlS are deleted whole; newer ones stay", async () => {
  const { engine, clock, scheduler } = await fakeEngine();
  await using _ = engine;
  for (let i = 1; i <= CHANNELS; i++) await offsetOf(engine, `room-${i}`, tiny(i));
  assert.equal(engine.stats().storedBytes, CHANNELS * CHANNEL_OVERHEAD_BYTES + sumOfTiny(CHANNELS));
  clock.time += 30_000;
  for (let i = 1; i <= 10; i++) await offsetOf(engine, `room-${i}`, tiny(i));
  scheduler.advance(35_000);
  // Only the ten published to 30 s later are left, with both their publications.
  assert.equal(engine.channels, 10);
  assert.equal(engine.stats().expiredChannels, CHANNELS - 10);
  assert.equal(engine.stats().storedBytes, 10 * CHANNEL_OVERHEAD_BYTES + 2 * sumOfTiny(10));
  assert.deepEqual(await kept(engine, "room-10"), [1, 2]);
  assert.equal((await engine.history("room-11", { limit: 1 })).position.offset, 0);
  assert.equal(scheduler.intervals, 1);
  scheduler.advance(60_000);
  // An empty store stops its sweep; the next channel starts it again.
  assert.deepEqual([engine.channels, engine.stats().storedBytes], [0, 0]);
  assert.equal(scheduler.intervals, 0);
  assert.equal(await offsetOf(engine, "room-10", tiny(10)), 1);
  assert.equal(scheduler.intervals, 1);
});

function sumOfTiny(n: number): number {
  let sum = 0;
  for (let i = 1; i <= n; i++) sum += bytesOf(tiny(i));
  return sum;
}

Deno.test("eviction and expiry match a model of the rules, step by step", async () => {
  const next = random(7);
  const max = 20_000;
  const model = new Model(5, max, 60_000);
  const clock = new FakeClock();
  const scheduler = new FakeScheduler(clock);
  // The model expires channels when the engine's sweep runs, not in between.
  const sweeps: Scheduler = {
    setInterval: (fn, ms) => scheduler.setInterval(() => (fn(), model.expire(clock.now())), ms),
    clearInterval: (handle) => scheduler.clearInterval(handle),
    setTimeout: (fn, ms) => scheduler.setTimeout(fn, ms),
    clearTimeout: (handle) => scheduler.clearTimeout(handle),
  };
  const options = { historyLimit: 5, historyMaxBytes: max, roomTtlS: 60, clock };
  await using engine = new MemoryEngine({ ...options, scheduler: sweeps });
  await engine.start(() => {});
  const names = Array.from({ length: 12 }, (_, i) => `room-${i}`);
  for (let step = 0; step < 3000; step++) {
    const roll = next();
    if (roll < 0.03) {
      scheduler.advance(Math.floor(next() * 70_000));
    } else {
      // A few channels get most publications, so the others go idle and age out.
      const channel = names[Math.floor(next() ** 3 * names.length)]!;
      const payload = JSON.stringify({ step, body: "é中a".repeat(Math.floor(next() * 200)) });
      clock.time += Math.floor(next() * 500);
      model.publish(channel, payload, clock.now());
      assert.equal(await offsetOf(engine, channel, payload), model.head(channel), `step ${step}`);
    }
    for (const name of names) {
      const page = await engine.history(name, { after: 0, limit: 100 });
      assert.deepEqual(
        [page.position.offset, page.publications],
        [model.head(name), model.kept(name)],
        `${name} at step ${step}`,
      );
    }
    assert.deepEqual(engine.stats(), model.stats(), `stats at step ${step}`);
    assert.equal(engine.channels, model.channels.size);
  }
  const { evictions, expiredChannels } = model.stats();
  assert.ok(evictions > 100 && expiredChannels > 10, `${evictions}, ${expiredChannels}`);
});

/** The rules of the store, written as plainly as possible. */
class Model {
  channels = new Map<string, { head: number; kept: string[]; at: number }>();
  stored = 0;
  evictions = 0;
  expired = 0;
  constructor(readonly limit: number, readonly max: number, readonly ttlMs: number) {}

  publish(name: string, payload: string, now: number): void {
    const channel = this.channels.get(name) ?? { head: 0, kept: [], at: now };
    if (!this.channels.delete(name)) this.stored += CHANNEL_OVERHEAD_BYTES;
    this.channels.set(name, channel);
    channel.at = now;
    channel.head++;
    channel.kept.push(payload);
    this.stored += bytesOf(payload);
    if (channel.kept.length > this.limit) this.stored -= bytesOf(channel.kept.shift()!);
    while (this.stored > this.max) {
      const [oldest, c] = this.channels.entries().next().value!;
      if (c.kept.length === 0 && c === channel) break;
      if (c.kept.length > 0) {
        this.stored -= bytesOf(c.kept.shift()!);
        this.evictions++;
      }
      if (c.kept.length === 0 && c !== channel) this.#delete(oldest);
    }
  }

  expire(now: number): void {
    for (const [name, c] of [...this.channels]) {
      if (c.at > now - this.ttlMs) continue;
      this.#delete(name);
      this.expired++;
    }
  }

  head(name: string): number {
    return this.channels.get(name)?.head ?? 0;
  }

  kept(name: string): { offset: number; payload: string }[] {
    const c = this.channels.get(name);
    if (c === undefined) return [];
    return c.kept.map((payload, i) => ({ offset: c.head - c.kept.length + 1 + i, payload }));
  }

  stats() {
    return { storedBytes: this.stored, evictions: this.evictions, expiredChannels: this.expired };
  }

  #delete(name: string): void {
    const c = this.channels.get(name)!;
    this.channels.delete(name);
    this.stored -= CHANNEL_OVERHEAD_BYTES + c.kept.reduce((n, p) => n + bytesOf(p), 0);
  }
}

/** A deterministic generator, so a failure can be replayed. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

Deno.test("a payload larger than the budget keeps its channel's counter", async () => {
  const { engine } = await fakeEngine({ historyMaxBytes: 100 });
  await using _ = engine;
  const big = JSON.stringify({ body: "x".repeat(500) });
  assert.equal(await offsetOf(engine, "other", "{}"), 1);
  for (const offset of [1, 2, 3]) assert.equal(await offsetOf(engine, "room", big), offset);
  // Everything was evicted, even the newest payload, but the room and its counter stay.
  assert.deepEqual(await kept(engine, "room"), []);
  assert.equal(engine.channels, 1);
  assert.deepEqual(engine.stats(), {
    storedBytes: CHANNEL_OVERHEAD_BYTES,
    evictions: 4,
    expiredChannels: 0,
  });
});

Deno.test("the sweep runs every sweepIntervalMs while a channel is held, until dispose", async () => {
  const clock = new FakeClock();
  const scheduler = new FakeScheduler(clock);
  const engine = new MemoryEngine({ roomTtlS: 300, clock, scheduler });
  // Stored before start: no timer until started.
  await offsetOf(engine, "early", "{}");
  assert.equal(scheduler.intervals, 0);
  await engine.start(() => {});
  assert.equal(scheduler.intervals, 1);
  scheduler.advance(sweepIntervalMs(300) * 10 - 1);
  assert.equal(engine.channels, 1, "ten sweeps before the TTL keep it");
  scheduler.advance(1);
  assert.deepEqual([engine.channels, engine.stats().expiredChannels], [0, 1]);
  await offsetOf(engine, "room", "{}");
  await engine[Symbol.asyncDispose]();
  assert.equal(scheduler.pending, 0);
  assert.deepEqual([engine.channels, engine.stats().storedBytes], [0, 0]);
  // A publish after dispose stores but starts no timer.
  await offsetOf(engine, "late", "{}");
  assert.equal(scheduler.pending, 0);
});

// The default engine runs its sweep on the global timers, which only the ops
// sanitizer (off by default in Deno 2) sees left running after a test.

Deno.test({
  name: "a manager's default engine holds no timer while it stores nothing",
  sanitizeOps: true,
  fn() {
    // Never disposed, as some tests leave their managers.
    const clock = new FakeClock();
    new ConnectionManager({ clock, scheduler: new FakeScheduler(clock) });
  },
});

Deno.test({
  name: "disposing a manager stops its default engine's sweep",
  sanitizeOps: true,
  async fn() {
    const clock = new FakeClock();
    const manager = new ConnectionManager({ clock, scheduler: new FakeScheduler(clock) });
    const conn = manager.connect(new FakeSocket(), { username: "alice" });
    await settle();
    conn.receive(JSON.stringify({ type: "message", message: "hello" }));
    await settle();
    const stored = await manager.history("lobby", { limit: 10 });
    assert.ok(stored.some((f) => f.type === "message"), "the message is stored");
    await manager[Symbol.asyncDispose]();
  },
});

Deno.test("options are checked", () => {
  assert.throws(() => new MemoryEngine({ historyMaxBytes: -1 }), /must be non-negative: -1/);
  assert.throws(() => new MemoryEngine({ roomTtlS: 0 }), /Room TTL must be positive: 0/);
  assert.throws(() => new MemoryEngine({ roomTtlS: NaN }), RangeError);
});
