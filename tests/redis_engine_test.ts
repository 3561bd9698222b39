import assert from "node:assert/strict";
import { ConnectionManager } from "../chat/connection_manager.ts";
import { userChannel } from "../chat/engines/engine.ts";
import { RedisEngine } from "../chat/engines/redis.ts";
import type { RedisEngineOptions } from "../chat/engines/redis_options.ts";
import { RedisClient } from "../chat/engines/redis_client.ts";
import { createLogger } from "../chat/logger.ts";
import {
  payload,
  range,
  type Started,
  startRecorded,
  store,
  testEngineContract,
} from "./helpers/engine_contract.ts";
import { eventually } from "./helpers/eventually.ts";
import { FakeClock, FakeSocket } from "./helpers/fakes.ts";
import { ignoreRedisTests, startRedis } from "./helpers/redis_server.ts";

const ignore = ignoreRedisTests();
const FAST_RECONNECT = { minDelayMs: 10, maxDelayMs: 200 };

/** A redis engine that records every delivery. */
interface Recorded extends Started, AsyncDisposable {
  engine: RedisEngine;
  /** Offsets delivered on one channel, in delivery order. */
  ids(channel: string): number[];
}

async function open(url: string, options: RedisEngineOptions = {}): Promise<Recorded> {
  const engine = new RedisEngine({ url, reconnect: FAST_RECONNECT, ...options });
  const started = await startRecorded(engine);
  return {
    ...started,
    engine,
    ids: (channel) => started.offsets(channel).filter((o) => o !== undefined),
    [Symbol.asyncDispose]: () => engine[Symbol.asyncDispose](),
  };
}

/** Subscribes and waits until a probe published afterwards arrives, so the subscription is live. */
async function subscribed(r: Recorded, channel: string, probe: Recorded = r): Promise<void> {
  r.engine.subscribe(channel);
  const { offset } = await store(probe.engine, channel, payload(channel, "probe"));
  await eventually(`probe on ${channel}`, () => r.ids(channel).includes(offset));
}

/** A TCP relay to Redis that a test can cut, as a network partition or a crash would. */
class Relay implements AsyncDisposable {
  readonly port: number;
  #listener: Deno.TcpListener;
  #conns = new Set<Deno.Conn>();
  #tasks = new Set<Promise<void>>();
  #accepting: Promise<void>;

  constructor(target: number) {
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.port = this.#listener.addr.port;
    this.#accepting = this.#accept(target);
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async #accept(target: number): Promise<void> {
    try {
      for await (const client of this.#listener) {
        const server = await Deno.connect({ hostname: "127.0.0.1", port: target });
        this.#conns.add(client).add(server);
        for (const task of [this.#pump(client, server), this.#pump(server, client)]) {
          this.#tasks.add(task);
          task.then(() => this.#tasks.delete(task));
        }
      }
    } catch {
      // The listener was closed by cut().
    }
  }

  async #pump(from: Deno.Conn, to: Deno.Conn): Promise<void> {
    const buf = new Uint8Array(16 * 1024);
    try {
      for (let n = await from.read(buf); n !== null; n = await from.read(buf)) {
        for (let offset = 0; offset < n;) offset += await to.write(buf.subarray(offset, n));
      }
    } catch {
      // Either side closed.
    }
    for (const conn of [from, to]) this.#close(conn);
  }

  #close(conn: Deno.Conn): void {
    if (!this.#conns.delete(conn)) return;
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }

  /** Drops every connection and refuses new ones. */
  async cut(): Promise<void> {
    try {
      this.#listener.close();
    } catch {
      // Already cut.
    }
    for (const conn of [...this.#conns]) this.#close(conn);
    await this.#accepting;
    await Promise.all(this.#tasks);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.cut();
  }
}

testEngineContract({
  name: "redis",
  ignore,
  shared: true,
  persistent: true,
  async open() {
    const redis = await startRedis();
    return {
      engine: (spec) => new RedisEngine({ url: redis.url, ...spec, reconnect: FAST_RECONNECT }),
      [Symbol.asyncDispose]: () => redis[Symbol.asyncDispose](),
    };
  },
});

Deno.test({ name: "redis engine storage details", ignore }, async (t) => {
  await using redis = await startRedis();
  await using r = await open(redis.url);

  await t.step("unsubscribe stops the deliveries of a channel", async () => {
    await subscribed(r, "gone");
    r.engine.unsubscribe("gone");
    const count = r.ids("gone").length;
    await store(r.engine, "gone", payload("gone", "unheard"));
    await subscribed(r, "marker");
    assert.equal(r.ids("gone").length, count);
  });

  await t.step("history serves HISTORY_LIMIT frames while the stream keeps more", async () => {
    await using small = await open(redis.url, { historyLimit: 100, keyPrefix: "small:" });
    await Promise.all(
      range(1, 400).map((i) => store(small.engine, "trim", payload("trim", `t${i}`))),
    );
    const page = await small.engine.history("trim", { after: 1, limit: 1000 });
    assert.equal(page.complete, false);
    assert.deepEqual(page.publications.map((p) => p.offset), range(301, 400));
    const recent = await small.engine.history("trim", { after: 390, limit: 1000 });
    assert.equal(recent.complete, true);
    assert.deepEqual(recent.publications.map((p) => p.offset), range(391, 400));
    await using admin = new RedisClient({ url: redis.url, reconnect: false });
    await admin.connect();
    const kept = await admin.command(["XLEN", "small:stream:trim"]) as number;
    assert.ok(kept >= 100 && kept < 400, `the stream keeps about the limit: ${kept}`);
  });

  await t.step("ids go on after the stream when the counter was lost", async () => {
    for (let i = 0; i < 3; i++) await store(r.engine, "lost", payload("lost", `l${i}`));
    await using admin = new RedisClient({ url: redis.url, reconnect: false });
    await admin.connect();
    await admin.command(["DEL", "chat:seq:lost"]);
    const next = await store(r.engine, "lost", payload("lost", "after"));
    assert.equal(next.offset, 4);
    assert.equal((await store(r.engine, "lost", payload("lost", "then"))).offset, 5);
  });

  await t.step("history leaves out publications older than the TTL (fake time)", async () => {
    const clock = new FakeClock(Date.now());
    await using ttl = await open(redis.url, { historyTtlS: 60, keyPrefix: "ttl:", clock });
    await store(ttl.engine, "ttl", payload("ttl", "old"));
    clock.time += 120_000;
    await store(ttl.engine, "ttl", payload("ttl", "new"));
    const newest = await ttl.engine.history("ttl", { limit: 10 });
    assert.deepEqual(newest.publications.map((p) => p.offset), [2]);
    const after = await ttl.engine.history("ttl", { after: 0, limit: 10 });
    assert.deepEqual(after, { ...newest, complete: false });
    assert.equal((await ttl.engine.history("ttl", { after: 1, limit: 10 })).complete, true);
  });
});

Deno.test({ name: "redis engine shares channels between processes", ignore }, async (t) => {
  await using redis = await startRedis();
  const logs: string[] = [];
  await using a = await open(redis.url, {
    logger: createLogger({ level: "info", write: (line) => logs.push(line) }),
  });
  await using b = await open(redis.url);
  await using c = await open(redis.url);

  await t.step("ids stay strictly increasing when two engines publish at once", async () => {
    await subscribed(c, "shared", a);
    const base = c.ids("shared").at(-1)!;
    await Promise.all([
      ...range(1, 50).map((i) => store(a.engine, "shared", payload("shared", `a${i}`))),
      ...range(1, 50).map((i) => store(b.engine, "shared", payload("shared", `b${i}`))),
    ]);
    await eventually("100 deliveries", () => c.ids("shared").length === 101);
    assert.deepEqual(c.ids("shared"), range(base, base + 100));
  });

  await t.step("an ephemeral publish on one engine reaches the other's user channel", async () => {
    await subscribed(b, userChannel("bob"), a);
    const text = '{"id":3,"type":"private"}';
    await a.engine.publish(userChannel("bob"), text);
    await eventually("the whisper at b", () => b.got.some((d) => d.payload === text));
    assert.deepEqual(b.got.at(-1), {
      channel: userChannel("bob"),
      payload: text,
      offset: undefined,
    });
    assert.ok(!a.got.some((d) => d.payload === text), "a did not subscribe to bob");
  });

  await t.step("a dropped pub/sub connection catches up exactly once, in order", async () => {
    await subscribed(a, "outage", b);
    const base = a.ids("outage").at(-1)!;
    await using admin = new RedisClient({ url: redis.url, reconnect: false });
    await admin.connect();
    const publishing = Promise.all(
      range(1, 60).map(async (i) => {
        if (i === 20) await admin.command(["CLIENT", "KILL", "TYPE", "pubsub"]);
        return await store(b.engine, "outage", payload("outage", `o${i}`, "Bob"));
      }),
    );
    await publishing;
    await eventually(
      "the outage",
      () => logs.some((line) => line.includes('"redis_disconnected"')),
    );
    await eventually("60 deliveries", () => a.ids("outage").length === 61);
    assert.deepEqual(a.ids("outage"), range(base, base + 60));
    await store(b.engine, "outage", payload("outage", "live again", "Bob"));
    await eventually("live again", () => a.ids("outage").length === 62);
  });
});

Deno.test(
  { name: "redis engine while Redis is down and after it comes back", ignore },
  async (t) => {
    await using redis = await startRedis();
    await using a = await open(redis.url);
    await using b = await open(redis.url);
    await subscribed(a, "room", b);

    await t.step("publish rejects and status is degraded while Redis is down", async () => {
      await redis.kill9();
      await eventually("degraded", () => a.engine.status() === "degraded");
      await assert.rejects(store(a.engine, "room", payload("room", "lost")), Error);
      await assert.rejects(a.engine.history("room", { limit: 10 }), Error);
      await assert.rejects(a.engine.presence.users("room"), Error);
    });

    await t.step("a restart without persistence restarts ids and the epoch", async () => {
      const before = a.engine.epoch;
      assert.equal(b.engine.epoch, before);
      await redis.restart();
      await eventually("ok", () => a.engine.status() === "ok" && b.engine.status() === "ok");
      const text = payload("room", "after", "Bob");
      const fresh = await store(b.engine, "room", text);
      assert.equal(fresh.offset, 1, "an empty Redis starts over");
      await eventually("the new publication at a", () => a.got.some((d) => d.payload === text));
      // Both noticed the loss (b when it caught up, or by publishing under the new epoch).
      await eventually(
        "a new epoch on both",
        () => a.engine.epoch !== before && b.engine.epoch !== before,
      );
      assert.equal(a.engine.epoch, b.engine.epoch);
      assert.equal(fresh.epoch, b.engine.epoch);
    });
  },
);

Deno.test({ name: "redis engine presence is shared and expires", ignore }, async (t) => {
  await using redis = await startRedis();
  await using relay = new Relay(redis.port);
  await using a = await open(relay.url, { presenceTtlS: 1 });
  await using b = await open(redis.url, { presenceTtlS: 1 });

  await t.step("users and lookup see every process", async () => {
    a.engine.presence.join("lobby", "Alice");
    a.engine.presence.connect("Alice", "id|alice");
    b.engine.presence.join("lobby", "Bob");
    b.engine.presence.connect("Bob");
    await eventually(
      "both in the room",
      async () => (await b.engine.presence.users("lobby")).join() === "Alice,Bob",
    );
    assert.deepEqual(await a.engine.presence.users("lobby"), ["Alice", "Bob"]);
    const alice = { username: "Alice", userId: "id|alice" };
    assert.deepEqual(await b.engine.presence.lookup("\uFF21LICE"), alice);
    assert.deepEqual(await a.engine.presence.lookup("bob"), { username: "Bob", userId: null });
    assert.equal(await b.engine.presence.lookup("carol"), undefined);
  });

  await t.step("leave and disconnect remove the user at once", async () => {
    b.engine.presence.leave("lobby", "Bob");
    b.engine.presence.disconnect("Bob");
    assert.deepEqual(await b.engine.presence.users("lobby"), ["Alice"]);
    assert.equal(await a.engine.presence.lookup("bob"), undefined);
    b.engine.presence.join("lobby", "Bob");
  });

  await t.step("refreshes keep members past the TTL", async () => {
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.deepEqual(await b.engine.presence.users("lobby"), ["Alice", "Bob"]);
  });

  await t.step("the users of a process cut off from Redis vanish within the TTL", async () => {
    await relay.cut();
    await eventually("a degraded", () => a.engine.status() === "degraded");
    await eventually(
      "Alice gone",
      async () => (await b.engine.presence.users("lobby")).join() === "Bob",
      { timeoutMs: 5000 },
    );
    assert.equal(await b.engine.presence.lookup("alice"), undefined);
  });

  await t.step("dispose removes the process's users at once", async () => {
    await using c = await open(redis.url, { presenceTtlS: 60 });
    c.engine.presence.join("lobby", "Carol");
    c.engine.presence.connect("Carol");
    await eventually(
      "Carol in",
      async () => (await b.engine.presence.users("lobby")).includes("Carol"),
    );
    await c.engine[Symbol.asyncDispose]();
    assert.deepEqual(await b.engine.presence.users("lobby"), ["Bob"]);
    assert.equal(await b.engine.presence.lookup("carol"), undefined);
  });
});

Deno.test({ name: "redis engine refuses to start without Redis", ignore }, async () => {
  const relay = new Relay(1);
  const url = relay.url;
  await relay.cut();
  const engine = new RedisEngine({ url, reconnect: FAST_RECONNECT });
  await assert.rejects(engine.start(() => {}), /Cannot connect to Redis: 127\.0\.0\.1:\d+/);
  await engine[Symbol.asyncDispose]();
});

Deno.test({ name: "connection manager on the redis engine", ignore }, async (t) => {
  await using redis = await startRedis();
  const manager = new ConnectionManager({
    engine: new RedisEngine({ url: redis.url, reconnect: FAST_RECONNECT }),
  });
  await using _ = manager;
  await manager.ready();

  await t.step("a kick notice reaches the user before the socket closes", async () => {
    const socket = new FakeSocket();
    manager.connect(socket, { username: "Mallory", room: "lobby" });
    await eventually("welcome", () => socket.framesOf("welcome").length === 1);
    assert.equal(await manager.kick("Mallory", { reason: "spam" }), 1);
    await eventually("closed", () => socket.closeCode() !== undefined);
    assert.equal(socket.closeCode(), 4003);
    const kick = socket.framesOf("system").find((f) => f.event === "kick");
    assert.equal(kick?.message, "Mallory was kicked: spam");
  });

  await t.step("frames sent before admission are handled after it", async () => {
    const socket = new FakeSocket();
    const conn = manager.connect(socket, { username: "Eager", room: "lobby" });
    conn.receive(JSON.stringify({ type: "message", message: "first words" }));
    await eventually("echo", () => socket.framesOf("message").length === 1);
    const types = socket.frames().map((f) => f.type);
    assert.ok(types.indexOf("welcome") < types.indexOf("message"));
    conn.closed(1000);
  });
});

Deno.test(
  { name: "connection managers on one redis count and whisper across", ignore },
  async (t) => {
    await using redis = await startRedis();
    const manager = new ConnectionManager({
      engine: new RedisEngine({ url: redis.url, reconnect: FAST_RECONNECT }),
    });
    await using _ = manager;
    await manager.ready();

    await t.step("a notice counts the users of every process", async () => {
      await using other = await open(redis.url);
      other.engine.presence.join("count", "Zed");
      await eventually(
        "Zed present",
        async () => (await other.engine.presence.users("count")).length === 1,
      );
      const socket = new FakeSocket();
      const conn = manager.connect(socket, { username: "Counter", room: "count" });
      await eventually("the join notice", () => socket.framesOf("system").length === 1);
      assert.equal(socket.framesOf("system")[0]!.connected_count, 2);
      conn.closed(1000);
    });

    await t.step("a private message reaches the recipient on another process", async () => {
      await using other = new ConnectionManager({
        engine: new RedisEngine({ url: redis.url, reconnect: FAST_RECONNECT }),
      });
      await other.ready();
      const ann = new FakeSocket();
      const annConn = manager.connect(ann, { username: "Ann", room: "dm" });
      const ben = new FakeSocket();
      const benConn = other.connect(ben, { username: "Ben", room: "dm" });
      await eventually(
        "both welcomed",
        () => ann.framesOf("welcome").length + ben.framesOf("welcome").length === 2,
      );
      annConn.receive(JSON.stringify({ type: "private", to: "ben", message: "psst $& \u2028" }));
      await eventually("Ben's copy", () => ben.framesOf("private").length === 1);
      await eventually("Ann's echo", () => ann.framesOf("private").length === 1);
      const got = ben.framesOf("private")[0]!;
      assert.deepEqual(got, ann.framesOf("private")[0]);
      assert.equal(got.id, 1);
      assert.equal(got.message, "psst $& \u2028");
      annConn.closed(1000);
      benConn.closed(1000);
    });
  },
);

Deno.test(
  {
    name: "private messages sent while the recipient's pub/sub link is down arrive once, in order",
    ignore,
  },
  async () => {
    await using redis = await startRedis();
    const sender = new ConnectionManager({
      engine: new RedisEngine({ url: redis.url, reconnect: FAST_RECONNECT }),
    });
    await using _sender = sender;
    // The recipient's process reconnects slowly, so the messages surely fall in its outage.
    const slow = new RedisEngine({
      url: redis.url,
      reconnect: { minDelayMs: 400, maxDelayMs: 400 },
    });
    const recipient = new ConnectionManager({ engine: slow });
    await using _recipient = recipient;
    await Promise.all([sender.ready(), recipient.ready()]);
    const ann = new FakeSocket();
    const annConn = sender.connect(ann, { username: "Ann", room: "dm" });
    const ben = new FakeSocket();
    const benConn = recipient.connect(ben, { username: "Ben", room: "dm" });
    await eventually(
      "both welcomed",
      () => ann.framesOf("welcome").length + ben.framesOf("welcome").length === 2,
    );
    // The user channels are live: a first message arrives.
    annConn.receive(JSON.stringify({ type: "private", to: "ben", message: "m0" }));
    await eventually("m0 at Ben", () => ben.framesOf("private").length === 1);

    await using admin = new RedisClient({ url: redis.url, reconnect: false });
    await admin.connect();
    await admin.command(["CLIENT", "KILL", "TYPE", "pubsub"]);
    await eventually("the recipient's link is down", () => slow.status() === "degraded");
    for (let i = 1; i <= 5; i++) {
      annConn.receive(JSON.stringify({ type: "private", to: "ben", message: `m${i}` }));
    }
    await eventually("the link is back", () => slow.status() === "ok");
    await eventually("m1..m5 at Ben", () => ben.framesOf("private").length >= 6, {
      timeoutMs: 5000,
    });
    // The sender's process lost its link too: its echoes are caught up as well.
    await eventually("Ann's echoes", () => ann.framesOf("private").length >= 6);
    // Nothing arrives twice.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const got = ben.framesOf("private");
    assert.deepEqual(got.map((f) => f.message), ["m0", "m1", "m2", "m3", "m4", "m5"]);
    assert.deepEqual(got.map((f) => f.id), [1, 2, 3, 4, 5, 6], "the pair's ids, in order");
    assert.deepEqual(got, ann.framesOf("private"), "the same frames as Ann's echoes");
    annConn.closed(1000);
    benConn.closed(1000);
  },
);
