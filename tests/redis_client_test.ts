import assert from "node:assert/strict";
import { RedisClient, RedisSubscriber } from "../chat/engines/redis_client.ts";
import type { RedisClientOptions, RedisStatus } from "../chat/engines/redis_link.ts";
import { RedisError } from "../chat/engines/redis_resp.ts";
import { eventually } from "./helpers/eventually.ts";
import { ignoreRedisTests, startRedis } from "./helpers/redis_server.ts";

const ignore = ignoreRedisTests();
const encoder = new TextEncoder();
// Short backoff keeps the reconnect tests fast.
const FAST_RECONNECT = { minDelayMs: 10, maxDelayMs: 100 };

/** Rejects when `promise` does not settle within `ms`, so no test can hang. */
async function within<T>(promise: Promise<T>, what: string, ms = 5000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Counts status events so a test can wait for the n-th "connected". */
function statusLog() {
  const counts: Record<RedisStatus, number> = { connected: 0, disconnected: 0 };
  let waiters: { status: RedisStatus; count: number; resolve: () => void }[] = [];
  return {
    counts,
    onStatus(status: RedisStatus) {
      counts[status]++;
      waiters = waiters.filter((w) => {
        if (counts[w.status] < w.count) return true;
        w.resolve();
        return false;
      });
    },
    waitFor(status: RedisStatus, count: number): Promise<void> {
      if (counts[status] >= count) return Promise.resolve();
      const { promise, resolve } = Promise.withResolvers<void>();
      waiters.push({ status, count, resolve });
      return within(promise, `${status} #${count}`);
    },
  };
}

/** Collects subscriber messages and lets a test await the next one. */
function inbox() {
  const messages: { channel: string; message: string; pattern?: string }[] = [];
  let waiter: { count: number; resolve: () => void } | null = null;
  return {
    messages,
    onMessage(channel: string, message: string, pattern?: string) {
      messages.push(pattern === undefined ? { channel, message } : { channel, message, pattern });
      if (waiter && messages.length >= waiter.count) {
        waiter.resolve();
        waiter = null;
      }
    },
    waitForCount(count: number): Promise<void> {
      if (messages.length >= count) return Promise.resolve();
      const { promise, resolve } = Promise.withResolvers<void>();
      waiter = { count, resolve };
      return within(promise, `message #${count}`);
    },
  };
}

async function connectedClient(options: RedisClientOptions): Promise<RedisClient> {
  const client = new RedisClient(options);
  await client.connect();
  return client;
}

/** Steps of "client runs commands against redis-server": values of every kind and size. */
async function valueSteps(t: Deno.TestContext, client: RedisClient): Promise<void> {
  await t.step("SET, GET and INCR", async () => {
    assert.equal(await client.command(["SET", "greeting", "hello"]), "OK");
    assert.equal(await client.command(["GET", "greeting"]), "hello");
    assert.equal(await client.command(["GET", "missing"]), null);
    assert.equal(await client.command(["INCR", "counter"]), 1);
    assert.equal(await client.command(["INCRBY", "counter", 41]), 42);
  });

  await t.step("unicode and binary values keep their byte length", async () => {
    const unicode = "h\u00e9llo \u{1F44B} \u4E16\u754C";
    await client.command(["SET", "unicode", unicode]);
    assert.equal(await client.command(["STRLEN", "unicode"]), encoder.encode(unicode).length);
    assert.equal(await client.command(["GET", "unicode"]), unicode);

    const binary = Uint8Array.of(0, 13, 10, 36, 51, 13, 10, 42, 0);
    await client.command(["SET", "binary", binary]);
    assert.equal(await client.command(["STRLEN", "binary"]), binary.length);
    assert.equal(await client.command(["GET", "binary"]), new TextDecoder().decode(binary));
  });

  await t.step("a large value arrives across many reads", async () => {
    const big = "\u00e9".repeat(300_000); // 600 KB on the wire
    await client.command(["SET", "big", big]);
    assert.equal(await client.command(["GET", "big"]), big);
  });

  await t.step("1000 concurrent commands are answered in order", async () => {
    const replies = await Promise.all(
      Array.from(
        { length: 1000 },
        (_, i) => client.command(i % 2 === 0 ? ["ECHO", `m${i}`] : ["INCR", "seq"]),
      ),
    );
    assert.deepEqual(
      replies,
      Array.from({ length: 1000 }, (_, i) => i % 2 === 0 ? `m${i}` : (i + 1) / 2),
    );
  });
}

/** Steps of "client runs commands against redis-server": pipelines and error replies. */
async function replySteps(t: Deno.TestContext, client: RedisClient): Promise<void> {
  await t.step("pipeline returns replies in order", async () => {
    const replies = await client.pipeline([
      ["DEL", "list"],
      ["RPUSH", "list", "a", "b", "c"],
      ["LRANGE", "list", 0, -1],
      ["LLEN", "list"],
    ]);
    assert.deepEqual(replies, [0, 3, ["a", "b", "c"], 3]);
    assert.deepEqual(await client.pipeline([]), []);
  });

  await t.step("an error reply rejects without breaking the connection", async () => {
    await client.command(["SET", "text", "abc"]);
    const [before, failing, after] = [
      client.command(["PING"]),
      client.command(["INCR", "text"]),
      client.command(["GET", "text"]),
    ];
    await assert.rejects(
      failing,
      (error: unknown) =>
        error instanceof RedisError && error.code === "ERR" &&
        error.message.includes("not an integer"),
    );
    assert.equal(await before, "PONG");
    assert.equal(await after, "abc");
    await assert.rejects(client.command(["NOSUCHCOMMAND"]), RedisError);
    await assert.rejects(
      client.pipeline([["PING"], ["INCR", "text"], ["PING"]]),
      RedisError,
    );
    assert.equal(await client.command(["PING"]), "PONG");
  });
}

Deno.test({
  name: "client runs commands against redis-server",
  ignore,
  async fn(t) {
    await using server = await startRedis();
    await using client = await connectedClient({ url: server.url });
    assert.equal(client.connected, true);

    await valueSteps(t, client);
    await replySteps(t, client);

    await t.step("subscribe commands are refused on a command client", async () => {
      await assert.rejects(client.command(["subscribe", "x"]), TypeError);
      assert.equal(await client.command(["PING"]), "PONG");
    });

    await t.step("XADD and XRANGE", async () => {
      const id1 = await client.command(["XADD", "room:1", "*", "user", "ann", "text", "hi"]);
      const id2 = await client.command(["XADD", "room:1", "*", "user", "bob", "text", "yo"]);
      assert.equal(typeof id1, "string");
      const entries = await client.command(["XRANGE", "room:1", "-", "+"]);
      assert.deepEqual(entries, [
        [id1, ["user", "ann", "text", "hi"]],
        [id2, ["user", "bob", "text", "yo"]],
      ]);
      const after = await client.command(["XRANGE", "room:1", `(${id1}`, "+"]);
      assert.deepEqual(after, [[id2, ["user", "bob", "text", "yo"]]]);
    });

    await t.step("SELECT chooses the database", async () => {
      await using db5 = await connectedClient({ url: `${server.url}/5` });
      await db5.command(["SET", "only-in-5", "yes"]);
      assert.equal(await db5.command(["GET", "only-in-5"]), "yes");
      assert.equal(await client.command(["GET", "only-in-5"]), null);
      await using db5b = await connectedClient({ port: server.port, db: 5 });
      assert.equal(await db5b.command(["GET", "only-in-5"]), "yes");
    });
  },
});

Deno.test({
  name: "client authenticates with a password",
  ignore,
  async fn(t) {
    await using server = await startRedis({ password: "s3cret" });

    await t.step("right password", async () => {
      await using client = await connectedClient({ url: server.url });
      assert.equal(await client.command(["PING"]), "PONG");
    });
    await t.step("right password with the default user name", async () => {
      await using client = await connectedClient({
        port: server.port,
        username: "default",
        password: "s3cret",
      });
      assert.equal(await client.command(["PING"]), "PONG");
    });
    await t.step("wrong password rejects with the server text", async () => {
      await using client = new RedisClient({ port: server.port, password: "wrong" });
      await assert.rejects(
        client.connect(),
        (error: unknown) => error instanceof RedisError && error.code === "WRONGPASS",
      );
      assert.equal(client.connected, false);
    });
    await t.step("missing password rejects with NOAUTH", async () => {
      await using client = new RedisClient({ port: server.port });
      await assert.rejects(
        client.connect(),
        (error: unknown) => error instanceof RedisError && error.code === "NOAUTH",
      );
    });
  },
});

Deno.test({
  name: "client reports an unreachable server by host and port",
  async fn() {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const { port } = listener.addr;
    listener.close();
    await using client = new RedisClient({ port });
    await assert.rejects(
      client.connect(),
      (error: unknown) =>
        error instanceof Error && error.message === `Cannot connect to Redis: 127.0.0.1:${port}`,
    );
    await assert.rejects(
      client.command(["PING"]),
      new Error(`Redis is not connected: 127.0.0.1:${port}`),
    );
  },
});

/** Restarts a password-protected server under a client that selected db 2. */
async function authAndSelectAfterRestart(): Promise<void> {
  const authed = await startRedis({ password: "pw" });
  try {
    const log = statusLog();
    await using c = await connectedClient({
      url: `${authed.url}/2`,
      reconnect: FAST_RECONNECT,
      onStatus: log.onStatus,
    });
    await authed.restart();
    await log.waitFor("connected", 2);
    await c.command(["SET", "k", "v"]);
    await using check = await connectedClient({ url: `${authed.url}/2` });
    assert.equal(await check.command(["GET", "k"]), "v");
  } finally {
    await authed[Symbol.asyncDispose]();
  }
}

Deno.test({
  name: "client rejects pending commands when the server dies and then reconnects",
  ignore,
  async fn(t) {
    await using server = await startRedis();
    const status = statusLog();
    const errors: Error[] = [];
    await using client = await connectedClient({
      url: server.url,
      reconnect: FAST_RECONNECT,
      onStatus: status.onStatus,
      onError: (error) => errors.push(error),
    });
    await status.waitFor("connected", 1);

    await t.step("pending commands reject with connection lost", async () => {
      const blocked = client.command(["BLPOP", "never", 0]);
      // PING is answered only after BLPOP, so once the server holds BLPOP
      // the kill happens with both commands still pending.
      const queued = client.command(["PING"]);
      const lost = Promise.all([
        assert.rejects(blocked, new Error("Redis connection lost")),
        assert.rejects(queued, new Error("Redis connection lost")),
      ]);
      await waitUntilBlocked(server.port);
      await server.kill9();
      await within(lost, "pending commands to reject");
      await status.waitFor("disconnected", 1);
      assert.equal(client.connected, false);
    });

    await t.step("commands issued while disconnected reject at once", async () => {
      await assert.rejects(
        client.command(["PING"]),
        new Error(`Redis is not connected: 127.0.0.1:${server.port}`),
      );
      await assert.rejects(client.pipeline([["PING"]]), /Redis is not connected/);
    });

    await t.step("the client reconnects when the server is back", async () => {
      await server.restart();
      await status.waitFor("connected", 2);
      assert.equal(client.connected, true);
      assert.equal(await client.command(["PING"]), "PONG");
    });

    await t.step("AUTH and SELECT are sent again on reconnect", authAndSelectAfterRestart);
  },
});

Deno.test({
  name: "client stops reconnecting when closed while the server is down",
  ignore,
  async fn() {
    await using server = await startRedis();
    const status = statusLog();
    const failures = Promise.withResolvers<Error[]>();
    const errors: Error[] = [];
    const client = await connectedClient({
      url: server.url,
      reconnect: FAST_RECONNECT,
      onStatus: status.onStatus,
      onError(error) {
        errors.push(error);
        if (errors.length === 2) failures.resolve(errors);
      },
    });
    await server.kill9();
    await status.waitFor("disconnected", 1);
    // Failed attempts are reported to onError while the backoff continues.
    for (const error of await within(failures.promise, "two failed reconnects")) {
      assert.equal(error.message, `Cannot connect to Redis: 127.0.0.1:${server.port}`);
    }
    await client.close();
    assert.equal(client.connected, false);
    await assert.rejects(client.command(["PING"]), new Error("Redis client is closed"));
    await assert.rejects(client.connect(), new Error("Redis client is closed"));
  },
});

Deno.test("client times out when the server never answers", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  const accepted = listener.accept();
  const client = new RedisClient({ port, connectTimeoutMs: 100 });
  await assert.rejects(
    client.connect(),
    new Error(`Redis connection timed out: 127.0.0.1:${port}`),
  );
  (await accepted).close();
  await client.close();
});

Deno.test({
  name: "client connects with TLS to a rediss:// URL",
  ignore: ignoreRedisTests({ tls: true }),
  async fn(t) {
    await using server = await startRedis({ tls: true, password: "tls-pw" });
    assert.ok(server.url.startsWith("rediss://"));
    assert.ok(server.caCert);

    await t.step("trusted CA", async () => {
      await using client = await connectedClient({ url: server.url, caCerts: [server.caCert!] });
      await client.command(["SET", "secure", "\u{1F512}"]);
      assert.equal(await client.command(["GET", "secure"]), "\u{1F512}");
    });
    await t.step("unknown CA is refused", async () => {
      await using client = new RedisClient({ url: server.url });
      await assert.rejects(client.connect(), /Cannot connect to Redis: 127\.0\.0\.1/);
    });
  },
});

/** Resolves once some client is blocked (e.g. in BLPOP) on the server. */
async function waitUntilBlocked(port: number): Promise<void> {
  await using observer = await connectedClient({ port, reconnect: false });
  await eventually(`a blocked client on port ${port}`, async () => {
    const info = await observer.command(["INFO", "clients"]);
    return typeof info === "string" && /blocked_clients:[1-9]/.test(info);
  }, { timeoutMs: 5000 });
}

Deno.test({
  name: "subscriber receives published messages",
  ignore,
  async fn(t) {
    await using server = await startRedis();
    const box = inbox();
    await using subscriber = new RedisSubscriber({ url: server.url, onMessage: box.onMessage });
    // Channels recorded before connect() are subscribed by connect().
    await subscriber.subscribe("early");
    await subscriber.connect();
    await using publisher = await connectedClient({ url: server.url });

    await t.step("channel subscription", async () => {
      await subscriber.subscribe("room:1", "room:2");
      assert.deepEqual(subscriber.channels.sort(), ["early", "room:1", "room:2"]);
      assert.equal(await publisher.command(["PUBLISH", "early", "e"]), 1);
      assert.equal(await publisher.command(["PUBLISH", "room:1", "h\u00e9llo \u{1F44B}"]), 1);
      assert.equal(await publisher.command(["PUBLISH", "room:2", "second"]), 1);
      await box.waitForCount(3);
      assert.deepEqual(box.messages, [
        { channel: "early", message: "e" },
        { channel: "room:1", message: "h\u00e9llo \u{1F44B}" },
        { channel: "room:2", message: "second" },
      ]);
    });

    await t.step("unsubscribe stops delivery", async () => {
      await subscriber.unsubscribe("room:2", "early");
      assert.deepEqual(subscriber.channels, ["room:1"]);
      assert.equal(await publisher.command(["PUBLISH", "room:2", "lost"]), 0);
    });

    await t.step("pattern subscription", async () => {
      box.messages.length = 0;
      await subscriber.psubscribe("user:*");
      assert.equal(await publisher.command(["PUBLISH", "user:7", "ping"]), 1);
      await box.waitForCount(1);
      assert.deepEqual(box.messages, [{ channel: "user:7", message: "ping", pattern: "user:*" }]);
      await subscriber.punsubscribe();
      assert.equal(await publisher.command(["PUBLISH", "user:7", "lost"]), 0);
    });

    await t.step("unsubscribe from everything and subscribe again", async () => {
      box.messages.length = 0;
      await subscriber.unsubscribe();
      assert.deepEqual(subscriber.channels, []);
      assert.equal(await publisher.command(["PUBLISH", "room:1", "lost"]), 0);
      await subscriber.subscribe("room:3");
      assert.equal(await publisher.command(["PUBLISH", "room:3", "back"]), 1);
      await box.waitForCount(1);
      assert.deepEqual(box.messages, [{ channel: "room:3", message: "back" }]);
    });
  },
});

Deno.test({
  name: "subscriber re-subscribes after the server restarts",
  ignore,
  async fn() {
    await using server = await startRedis();
    const box = inbox();
    const status = statusLog();
    await using subscriber = new RedisSubscriber({
      url: server.url,
      reconnect: FAST_RECONNECT,
      onStatus: status.onStatus,
      onMessage: box.onMessage,
    });
    await subscriber.connect();
    await subscriber.subscribe("room:1");
    await subscriber.psubscribe("dm:*");

    await server.stop();
    await status.waitFor("disconnected", 1);
    assert.equal(subscriber.connected, false);
    // Recorded while disconnected and subscribed by the reconnect.
    await subscriber.subscribe("room:2");
    await server.restart();
    await status.waitFor("connected", 2);
    assert.equal(subscriber.connected, true);

    await using publisher = await connectedClient({ url: server.url });
    assert.equal(await publisher.command(["PUBLISH", "room:1", "after restart"]), 1);
    assert.equal(await publisher.command(["PUBLISH", "room:2", "new room"]), 1);
    assert.equal(await publisher.command(["PUBLISH", "dm:ann", "pattern"]), 1);
    await box.waitForCount(3);
    assert.deepEqual(box.messages, [
      { channel: "room:1", message: "after restart" },
      { channel: "room:2", message: "new room" },
      { channel: "dm:ann", message: "pattern", pattern: "dm:*" },
    ]);
  },
});
