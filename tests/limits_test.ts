import assert from "node:assert/strict";
import { KeyedRateLimiter, takeToken } from "../chat/rate_limit.ts";
import { eventually } from "./helpers/eventually.ts";
import type { Frame } from "./helpers/fakes.ts";
import { startServer } from "./helpers/app_server.ts";
import { RawClient } from "./helpers/raw_http.ts";
import { TestClient } from "./helpers/ws_client.ts";

// Every test raises the limits it does not exercise, as a benchmark would.
const RELAXED = {
  HANDSHAKES_PER_IP_PER_MIN: "10000",
  MAX_CONNECTIONS_PER_IP: "1000",
  RATE_LIMIT_PER_S: "1000",
  RATE_LIMIT_BURST: "1000",
};

const welcome = (f: Frame) => f.type === "welcome";
const errorCode = (code: string) => (f: Frame) => f.type === "error" && f.code === code;

Deno.test("keyed rate limiter allows a burst, then one token per refill interval", () => {
  let now = 1_000_000;
  const limiter = new KeyedRateLimiter({ ratePerS: 2, burst: 3, clock: { now: () => now } });
  assert.equal(limiter.take("a"), 0);
  assert.equal(limiter.take("a"), 0);
  assert.equal(limiter.take("a"), 0);
  assert.equal(limiter.take("a"), 500);
  assert.equal(limiter.take("b"), 0, "keys have their own buckets");
  now += 499;
  assert.equal(limiter.take("a"), 1);
  now += 1;
  assert.equal(limiter.take("a"), 0);
  assert.equal(limiter.take("a"), 500);
});

Deno.test("takeToken refills a plain bucket up to its burst and says how long to wait", () => {
  // The per-connection frame limit: a bucket of two fields on the connection's state.
  const bucket = { tokens: 2, tokensAt: 0 };
  const perMs = 1 / 100;
  assert.equal(takeToken(bucket, 0, perMs, 2), 0);
  assert.equal(takeToken(bucket, 0, perMs, 2), 0);
  assert.equal(takeToken(bucket, 0, perMs, 2), 100);
  assert.equal(takeToken(bucket, 60, perMs, 2), 40, "nothing is taken while empty");
  assert.equal(takeToken(bucket, 100, perMs, 2), 0);
  assert.equal(takeToken(bucket, 10_000, perMs, 2), 0, "an idle bucket holds the burst at most");
  assert.equal(takeToken(bucket, 10_000, perMs, 2), 0);
  assert.equal(takeToken(bucket, 10_000, perMs, 2), 100);
  assert.deepEqual(bucket, { tokens: 0, tokensAt: 10_000 });
});

Deno.test("keyed rate limiter forgets idle keys and stays within its key limit", async (t) => {
  await t.step("idle keys are pruned after a full refill", () => {
    let now = 0;
    const limiter = new KeyedRateLimiter({ ratePerS: 1, burst: 2, clock: { now: () => now } });
    for (let i = 0; i < 100; i++) limiter.take(`10.0.0.${i}`);
    assert.equal(limiter.size, 100);
    now += 2000;
    limiter.take("10.0.1.1");
    assert.equal(limiter.size, 1);
  });
  await t.step("busy keys are kept and the oldest goes when full", () => {
    let now = 0;
    const limiter = new KeyedRateLimiter({
      ratePerS: 1,
      burst: 1,
      maxKeys: 3,
      clock: { now: () => now },
    });
    limiter.take("a");
    limiter.take("b");
    limiter.take("c");
    now += 10;
    limiter.take("a"); // refreshes a: b is now the least recently used
    limiter.take("d");
    assert.equal(limiter.size, 3);
    assert.equal(limiter.take("a"), 990, "a kept its empty bucket");
    assert.equal(limiter.take("b"), 0, "b was forgotten");
  });
  await t.step("invalid settings are refused", () => {
    assert.throws(() => new KeyedRateLimiter({ ratePerS: 0, burst: 1 }), RangeError);
    assert.throws(() => new KeyedRateLimiter({ ratePerS: 1, burst: 0.5 }), RangeError);
    assert.throws(() => new KeyedRateLimiter({ ratePerS: 1, burst: 1, maxKeys: 0 }), RangeError);
  });
});

Deno.test("a flooding client gets rate_limited errors, then close 1008", async () => {
  await using server = await startServer({
    ...RELAXED,
    RATE_LIMIT_PER_S: "1",
    RATE_LIMIT_BURST: "5",
  });
  await using flooder = await TestClient.connect(server.url("/ws/chat/Flooder"));
  await using bob = await TestClient.connect(server.url("/ws/chat/Bob"));
  await flooder.next(welcome);
  await bob.next(welcome);
  // Burst 5, then 5 strikes get errors, and the 6th strike closes.
  for (let i = 0; i < 40; i++) flooder.sendJson({ type: "message", message: `flood ${i}` });
  const closed = await flooder.closed;
  assert.deepEqual(closed, { code: 1008, reason: "Rate limit exceeded" });
  assert.ok(flooder.frames.filter(errorCode("rate_limited")).length >= 1);
  const delivered = bob.frames.filter((f) => f.type === "message" && f.username === "Flooder");
  assert.ok(delivered.length <= 6, `dropped frames were not delivered: ${delivered.length}`);
  // Bob's own budget is untouched.
  bob.sendJson({ type: "message", message: "still here" });
  await bob.next((f) => f.type === "message" && f.message === "still here");
  assert.ok(server.app.manager.metrics.rateLimited >= 6);
});

Deno.test("connections per address are limited to MAX_CONNECTIONS_PER_IP", async () => {
  await using server = await startServer({ ...RELAXED, MAX_CONNECTIONS_PER_IP: "3" });
  const clients: TestClient[] = [];
  try {
    for (const name of ["A", "B", "C"]) {
      const client = await TestClient.connect(server.url(`/ws/chat/${name}`));
      clients.push(client);
      await client.next(welcome);
    }
    await using extra = await TestClient.connect(server.url("/ws/chat/D"));
    assert.deepEqual(await extra.closed, {
      code: 1008,
      reason: "Too many connections from this address",
    });
    assert.ok(!extra.frames.some(welcome), "admitted");
    // Echo sockets count too.
    await using echo = await TestClient.connect(server.url("/ws"));
    assert.equal((await echo.closed).code, 1008);

    await clients.shift()!.close();
    await eventually("A gone", () => server.app.manager.connectionCount === 2);
    await using again = await TestClient.connect(server.url("/ws/chat/E"));
    await again.next(welcome);
  } finally {
    for (const client of clients) await client.close();
  }
});

Deno.test("handshakes over HANDSHAKES_PER_IP_PER_MIN get 429 with Retry-After", async () => {
  await using server = await startServer({ ...RELAXED, HANDSHAKES_PER_IP_PER_MIN: "3" });
  for (let i = 0; i < 3; i++) {
    await using raw = await RawClient.connect(server.port);
    assert.equal((await raw.handshake(`/ws/chat/U${i}`)).status, 101);
  }
  await using raw = await RawClient.connect(server.port);
  const refused = await raw.handshake("/ws/chat/U4");
  assert.equal(refused.status, 429);
  const retryAfter = Number(refused.headers.get("retry-after"));
  // One handshake comes back every 20 s at 3 per minute.
  assert.ok(retryAfter >= 1 && retryAfter <= 20, `Retry-After: ${retryAfter}`);
  assert.equal(server.app.manager.metrics.handshakesRefused.get(429), 1);
  // Plain HTTP routes are not counted.
  const health = await fetch(server.httpUrl("/healthz"));
  assert.equal(health.status, 200);
  await health.body?.cancel();
});

Deno.test("X-Forwarded-For names the client only when TRUST_PROXY is set", async (t) => {
  const handshake = async (port: number, forwardedFor: string) => {
    await using raw = await RawClient.connect(port);
    return (await raw.handshake("/ws", { "X-Forwarded-For": forwardedFor })).status;
  };

  await t.step("ignored without TRUST_PROXY", async () => {
    await using server = await startServer({ ...RELAXED, HANDSHAKES_PER_IP_PER_MIN: "2" });
    assert.equal(await handshake(server.port, "198.51.100.1"), 101);
    assert.equal(await handshake(server.port, "198.51.100.2"), 101);
    assert.equal(await handshake(server.port, "198.51.100.3"), 429, "all count as 127.0.0.1");
  });

  await t.step("honoured with TRUST_PROXY", async () => {
    await using server = await startServer({
      ...RELAXED,
      HANDSHAKES_PER_IP_PER_MIN: "2",
      MAX_CONNECTIONS_PER_IP: "1",
      TRUST_PROXY: "true",
    });
    assert.equal(await handshake(server.port, "198.51.100.1"), 101);
    assert.equal(await handshake(server.port, "198.51.100.2"), 101);
    assert.equal(await handshake(server.port, "198.51.100.1, 10.0.0.1"), 101);
    assert.equal(await handshake(server.port, "198.51.100.1"), 429, "the first hop is the client");

    // The per-address connection limit uses the same address.
    const headers = { "x-forwarded-for": "203.0.113.9" };
    await using first = await TestClient.connect(server.url("/ws/chat/P1"), { headers });
    await first.next(welcome);
    const info = server.app.manager.connections().find((c) => c.username === "P1");
    assert.equal(info?.remoteAddr, "203.0.113.9");
    await using second = await TestClient.connect(server.url("/ws/chat/P2"), { headers });
    assert.equal((await second.closed).code, 1008);
    await using other = await TestClient.connect(server.url("/ws/chat/P3"), {
      headers: { "x-forwarded-for": "203.0.113.10" },
    });
    await other.next(welcome);
  });
});

Deno.test("a connection joins at most MAX_ROOMS_PER_CONNECTION rooms", async () => {
  await using server = await startServer({ ...RELAXED, MAX_ROOMS_PER_CONNECTION: "2" });
  await using client = await TestClient.connect(server.url("/ws/chat/Roamer"));
  await client.next(welcome);
  client.sendJson({ type: "join", room: "second" });
  await client.next((f) => f.type === "joined" && f.room === "second");
  client.sendJson({ type: "join", room: "third" });
  const refused = await client.next(errorCode("too_many_rooms"));
  assert.match(String(refused.message), /2/);
  client.sendJson({ type: "leave", room: "second" });
  await client.next((f) => f.type === "left" && f.room === "second");
  client.sendJson({ type: "join", room: "third" });
  await client.next((f) => f.type === "joined" && f.room === "third");
  // Room names follow the username rules.
  client.sendJson({ type: "join", room: "no/slashes" });
  await client.next(errorCode("invalid_room"));
  assert.equal(client.closeInfo, undefined);
});

Deno.test("an address enters at most ROOMS_PER_IP_PER_MIN new rooms a minute", async (t) => {
  await using server = await startServer({
    ...RELAXED,
    ROOMS_PER_IP_PER_MIN: "3",
    MAX_ROOMS_PER_CONNECTION: "100",
  });
  // The handshake's room is the first new room.
  await using churner = await TestClient.connect(server.url("/ws/chat/Churner?room=r0"));
  await churner.next(welcome);

  await t.step("joins past the quota get rate_limited and create nothing", async () => {
    for (const room of ["r1", "r2"]) {
      churner.sendJson({ type: "join", room });
      await churner.next((f) => f.type === "joined" && f.room === room);
    }
    churner.sendJson({ type: "join", room: "r3" });
    const refused = await churner.next(errorCode("rate_limited"));
    assert.match(String(refused.message), /new rooms.*3/);
    assert.equal(server.app.manager.roomCount, 3);
    assert.equal(churner.closeInfo, undefined);
  });

  await t.step("a room that has members costs nothing", async () => {
    await using guest = await TestClient.connect(server.url("/ws/chat/Guest?room=r1"));
    await guest.next(welcome);
    guest.sendJson({ type: "join", room: "r2" });
    await guest.next((f) => f.type === "joined" && f.room === "r2");
  });

  await t.step("a handshake into a new room past the quota is closed with 1008", async () => {
    await using late = await TestClient.connect(server.url("/ws/chat/Late?room=r9"));
    assert.deepEqual(await late.closed, { code: 1008, reason: "Rate limit exceeded" });
  });
});
