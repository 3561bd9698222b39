import assert from "node:assert/strict";
import { ConnectionManager } from "../chat/connection_manager.ts";
import { type Draft, privateChannel, userChannel } from "../chat/engines/engine.ts";
import { RedisEngine, type RedisEngineOptions } from "../chat/engines/redis.ts";
import { RedisClient } from "../chat/engines/redis_client.ts";
import { createLogger } from "../chat/logger.ts";
import type { StoredFrame } from "../chat/protocol.ts";
import {
  message,
  privateMessage as whisper,
  testEngineContract,
} from "./helpers/engine_contract.ts";
import { eventually } from "./helpers/eventually.ts";
import { FakeSocket } from "./helpers/fakes.ts";
import { ignoreRedisTests, startRedis } from "./helpers/redis_server.ts";

const ignore = ignoreRedisTests();
const FAST_RECONNECT = { minDelayMs: 10, maxDelayMs: 200 };

/** An engine that records every delivery. */
interface Recorded extends AsyncDisposable {
  engine: RedisEngine;
  got: { channel: string; frame: StoredFrame }[];
  /** Ids delivered on one channel, in delivery order. */
  ids(channel: string): number[];
}

async function open(url: string, options: RedisEngineOptions = {}): Promise<Recorded> {
  const engine = new RedisEngine({ url, reconnect: FAST_RECONNECT, ...options });
  const got: Recorded["got"] = [];
  await engine.start((channel, frame) => got.push({ channel, frame }));
  return {
    engine,
    got,
    ids: (channel) => got.filter((d) => d.channel === channel).map((d) => d.frame.id),
    [Symbol.asyncDispose]: () => engine[Symbol.asyncDispose](),
  };
}

/** Subscribes and waits until a probe published afterwards arrives, so the subscription is live. */
async function subscribed(r: Recorded, channel: string, probe: Recorded = r): Promise<void> {
  r.engine.subscribe(channel);
  const frame = await probe.engine.publish(channel, message(channel, "probe"));
  await eventually(`probe on ${channel}`, () => r.ids(channel).includes(frame.id));
}

const range = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => from + i);

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
      engine: ({ historyLimit }) =>
        new RedisEngine({ url: redis.url, historyLimit, reconnect: FAST_RECONNECT }),
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
    await r.engine.publish("gone", message("gone", "unheard"));
    await subscribed(r, "marker");
    assert.equal(r.ids("gone").length, count);
  });

  await t.step("history serves HISTORY_LIMIT frames while the stream keeps more", async () => {
    await using small = await open(redis.url, { historyLimit: 100, keyPrefix: "small:" });
    await Promise.all(
      range(1, 400).map((i) => small.engine.publish("trim", message("trim", `t${i}`))),
    );
    const page = await small.engine.history("trim", { after: 1, limit: 1000 });
    assert.equal(page.complete, false);
    assert.deepEqual(page.frames.map((f) => f.id), range(301, 400));
    const recent = await small.engine.history("trim", { after: 390, limit: 1000 });
    assert.equal(recent.complete, true);
    assert.deepEqual(recent.frames.map((f) => f.id), range(391, 400));
    await using admin = new RedisClient({ url: redis.url, reconnect: false });
    await admin.connect();
    const kept = await admin.command(["XLEN", "small:stream:trim"]) as number;
    assert.ok(kept >= 100 && kept < 400, `the stream keeps about the limit: ${kept}`);
  });

  await t.step("ids go on after the stream when the counter was lost", async () => {
    for (let i = 0; i < 3; i++) await r.engine.publish("lost", message("lost", `l${i}`));
    await using admin = new RedisClient({ url: redis.url, reconnect: false });
    await admin.connect();
    await admin.command(["DEL", "chat:seq:lost"]);
    const next = await r.engine.publish("lost", message("lost", "after"));
    assert.equal(next.id, 4);
    assert.equal((await r.engine.publish("lost", message("lost", "then"))).id, 5);
  });

  await t.step("history leaves out frames older than the history TTL", async () => {
    await using ttl = await open(redis.url, { historyTtlS: 60, keyPrefix: "ttl:" });
    const old = {
      ...message("ttl", "old"),
      timestamp: new Date(Date.now() - 120_000).toISOString(),
    };
    await ttl.engine.publish("ttl", old as Draft);
    await ttl.engine.publish("ttl", message("ttl", "new"));
    const newest = await ttl.engine.history("ttl", { limit: 10 });
    assert.deepEqual(newest.frames.map((f) => f.id), [2]);
    const after = await ttl.engine.history("ttl", { after: 0, limit: 10 });
    assert.deepEqual(after, { frames: newest.frames, complete: false });
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
      ...range(1, 50).map((i) => a.engine.publish("shared", message("shared", `a${i}`))),
      ...range(1, 50).map((i) => b.engine.publish("shared", message("shared", `b${i}`))),
    ]);
    await eventually("100 deliveries", () => c.ids("shared").length === 101);
    assert.deepEqual(c.ids("shared"), range(base, base + 100));
  });

  await t.step("a frame published on one engine reaches the other's user channel", async () => {
    await subscribed(b, userChannel("bob"), a);
    const pair = privateChannel("alice", "bob");
    const sent = await a.engine.publish(pair, whisper("Alice", "bob", "across"));
    await eventually("the whisper at b", () => b.ids(pair).includes(sent.id));
    assert.deepEqual(a.ids(pair), [], "a has no subscriber for either user");
  });

  await t.step("a dropped pub/sub connection catches up exactly once, in order", async () => {
    await subscribed(a, "outage", b);
    const base = a.ids("outage").at(-1)!;
    await using admin = new RedisClient({ url: redis.url, reconnect: false });
    await admin.connect();
    const publishing = Promise.all(
      range(1, 60).map(async (i) => {
        if (i === 20) await admin.command(["CLIENT", "KILL", "TYPE", "pubsub"]);
        return await b.engine.publish("outage", message("outage", `o${i}`, "Bob"));
      }),
    );
    await publishing;
    await eventually(
      "the outage",
      () => logs.some((line) => line.includes('"redis_disconnected"')),
    );
    await eventually("60 deliveries", () => a.ids("outage").length === 61);
    assert.deepEqual(a.ids("outage"), range(base, base + 60));
    await b.engine.publish("outage", message("outage", "live again", "Bob"));
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
      await assert.rejects(a.engine.publish("room", message("room", "lost")), Error);
      await assert.rejects(a.engine.history("room", { limit: 10 }), Error);
      await assert.rejects(a.engine.presence.users("room"), Error);
    });

    await t.step("a restart without persistence restarts ids and deliveries go on", async () => {
      await redis.restart();
      await eventually("ok", () => a.engine.status() === "ok" && b.engine.status() === "ok");
      const fresh = await b.engine.publish("room", message("room", "after", "Bob"));
      assert.equal(fresh.id, 1, "an empty Redis starts over");
      await eventually(
        "the new frame at a",
        () => a.got.some((d) => d.frame.type === "message" && d.frame.message === "after"),
      );
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

  await t.step("a system frame counts the users of every process", async () => {
    const frame = await b.engine.publish("lobby", {
      type: "system",
      room: "lobby",
      event: "join",
      message: "Bob joined the room",
      username: "System",
      sender: "System",
      user: "Bob",
      connected_count: 1,
      timestamp: new Date().toISOString(),
    });
    assert.equal(frame.type === "system" && frame.connected_count, 2);
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
