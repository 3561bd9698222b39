import assert from "node:assert/strict";
import { ErrorCode } from "../chat/protocol.ts";
import { eventually } from "./helpers/eventually.ts";
import type { Frame } from "./helpers/fakes.ts";
import { startServer } from "./helpers/app_server.ts";
import { RawClient } from "./helpers/raw_http.ts";
import { TestClient } from "./helpers/ws_client.ts";

// Limits not under test are raised, as a benchmark from one host would.
const RELAXED = {
  HANDSHAKES_PER_IP_PER_MIN: "100000",
  MAX_CONNECTIONS_PER_IP: "100000",
  RATE_LIMIT_PER_S: "1000000",
  RATE_LIMIT_BURST: "1000000",
};

const welcome = (f: Frame) => f.type === "welcome";
const messageFrom = (name: string) => (f: Frame) => f.type === "message" && f.username === name;

/** A small seeded generator (mulberry32), so a failing run can be replayed. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const CHARS = [
  ..."abcXYZ019 {}[]\":,\\/'`<>",
  ..."\u0000\u0001\u0007\b\t\n\r\u001b\u007f\u0085\u2028\u2029\ufeff\ufffd",
  ..."é漢字🙂\u0301",
  "\ud800",
  "\udfff",
];

/** One random or malformed frame, always under MAX_MESSAGE_BYTES (16 KiB). */
function fuzzFrame(rand: () => number): string | Uint8Array<ArrayBuffer> {
  const int = (n: number) => Math.floor(rand() * n);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
  const garbage = (max: number) => {
    let s = "";
    for (let i = int(max); i > 0; i--) s += pick(CHARS);
    return s;
  };
  switch (int(10)) {
    case 0: // random text, often a plain chat message
      return garbage(200);
    case 1: // bad escapes and lone surrogates inside JSON strings
      return `{"type":"message","message":"${
        pick(["\\ud800", "\\udfff\\ud800", "\\u12", "\\uZZZZ", "\\x41", "\\", "\\q", "\\u0000"])
      }${garbage(10)}"}`;
    case 2: { // deep nesting
      const depth = 1 + int(5000);
      return pick([
        "[".repeat(depth) + "]".repeat(depth),
        `{"type":"message","message":${"[".repeat(depth)}${"]".repeat(depth)}}`,
        `{"type":"join","room":${'{"a":'.repeat(depth / 2)}1${"}".repeat(depth / 2)}}`,
        "{".repeat(depth),
      ]);
    }
    case 3: // huge and odd numbers
      return pick([
        `{"type":"resume","room":"lobby","since":1e400}`,
        `{"type":"join","room":"lobby","since":-1}`,
        `{"type":"join","room":"r1","since":9007199254740993}`,
        `{"type":"join","room":"r1","since":1.5}`,
        `{"type":${"9".repeat(300)}}`,
        `{"type":"message","message":-0}`,
        `{"type":"message","message":"x","room":1e308}`,
        "1e999999",
        `[${"1,".repeat(2000)}1]`,
      ]);
    case 4: { // wrong types
      const bad = pick(["null", "true", "42", "[]", "{}", '["message"]', '""']);
      return pick([
        `{"type":${bad}}`,
        `{"type":"message","message":${bad}}`,
        `{"type":"private","to":${bad},"message":"hi"}`,
        `{"type":"join","room":${bad}}`,
        `{"type":"rename","name":${bad}}`,
        `{"type":"users","room":${bad}}`,
        `{"type":"leave","room":${bad}}`,
        bad,
      ]);
    }
    case 5: // raw control characters inside JSON strings
      return `{"type":"message","message":"a${String.fromCharCode(int(32))}b"}`;
    case 6: // binary
      return crypto.getRandomValues(new Uint8Array(int(500)));
    case 7: // unknown types and truncated JSON
      return pick([
        `{"type":"${garbage(12)}"}`,
        `{"type":"message","message":"cut`,
        `{"type":"__proto__","__proto__":{"x":1}}`,
        `{"constructor":{"prototype":{}},"type":"heartbeat"}`,
      ]);
    default: { // well-formed frames with random arguments
      const room = pick(["lobby", "r1", "r2", "", " ", "../etc", "a".repeat(40), garbage(8)]);
      return JSON.stringify(pick([
        { type: "message", message: garbage(50) || "x" },
        { type: "message", message: "x", room },
        { type: "private", to: pick(["Alice", "Bob", "nobody", garbage(6)]), message: "fuzz" },
        { type: "join", room },
        { type: "leave", room },
        { type: "users", room },
        { type: "rename", name: pick(["Alice", "System", "", garbage(8), `F${int(1e6)}`]) },
        { type: "heartbeat" },
        { type: "pong" },
        { type: "resume", room: pick(["r1", "r2"]), since: int(1e6) },
      ]));
    }
  }
}

const KNOWN_ERRORS = new Set<string>(Object.values(ErrorCode));
const SERVER_TYPES = new Set([
  "welcome",
  "joined",
  "left",
  "message",
  "private",
  "system",
  "users",
  "ping",
  "heartbeat_ack",
  "error",
]);

Deno.test("fuzzed frames get error frames or documented closes while others chat", async () => {
  await using server = await startServer(RELAXED);
  await using alice = await TestClient.connect(server.url("/ws/chat/Alice"));
  await using bob = await TestClient.connect(server.url("/ws/chat/Bob"));
  await alice.next(welcome);
  await bob.next(welcome);

  const FUZZERS = 4;
  const ROUNDS = 25;
  const BATCH = 99; // plus one sync frame: 100 frames per fuzzer and round
  const fuzzers: TestClient[] = [];
  try {
    for (let i = 0; i < FUZZERS; i++) {
      const fuzzer = await TestClient.connect(server.url(`/ws/chat/Fuzzer${i}`));
      await fuzzer.next(welcome);
      fuzzers.push(fuzzer);
    }
    const rand = random(0x5eed);
    let sent = 0;
    let chat = 0;
    for (let round = 0; round < ROUNDS; round++) {
      for (const fuzzer of fuzzers) {
        for (let i = 0; i < BATCH; i++) fuzzer.send(fuzzFrame(rand));
        // A unique error marks the end of the batch: frames are handled in order.
        fuzzer.sendJson({ type: "users", room: `sync-${round}` });
        sent += BATCH + 1;
      }
      for (let i = 0; i < 2; i++, chat++) {
        alice.sendJson({ type: "message", message: `alice ${chat}` });
        bob.sendJson({ type: "message", message: `bob ${chat}` });
      }
      for (const fuzzer of fuzzers) {
        const marker = `Not in room: sync-${round}`;
        await fuzzer.next((f) => f.type === "error" && f.message === marker, 20_000);
      }
    }
    assert.equal(sent, 10_000);

    // Alice and Bob each get every chat message, in order.
    const expected = (name: string) => Array.from({ length: chat }, (_, i) => `${name} ${i}`);
    for (const client of [alice, bob]) {
      await eventually(
        "every chat message",
        () =>
          client.frames.filter(messageFrom("Alice")).length === chat &&
          client.frames.filter(messageFrom("Bob")).length === chat,
      );
      assert.deepEqual(
        client.frames.filter(messageFrom("Alice")).map((f) => f.message),
        expected("alice"),
      );
      assert.deepEqual(
        client.frames.filter(messageFrom("Bob")).map((f) => f.message),
        expected("bob"),
      );
    }
    // Fuzzers got only well-formed server frames and errors with known codes.
    for (const fuzzer of fuzzers) {
      assert.equal(fuzzer.closeInfo, undefined, "no fuzzer was closed");
      for (const frame of fuzzer.frames) {
        assert.ok(SERVER_TYPES.has(String(frame.type)), `unexpected frame: ${frame.type}`);
        if (frame.type === "error") {
          assert.ok(KNOWN_ERRORS.has(String(frame.code)), `unknown code: ${frame.code}`);
        }
      }
      assert.ok(fuzzer.frames.filter((f) => f.type === "error").length > BATCH, "errors were sent");
    }
    const errors = server.app.manager.metrics.errors;
    for (const code of ["bad_json", "bad_message", "unknown_type", "binary_not_supported"]) {
      assert.ok((errors.get(code) ?? 0) > 0, `no ${code} errors`);
    }
  } finally {
    for (const fuzzer of fuzzers) await fuzzer.close();
  }

  // Frames over MAX_MESSAGE_BYTES (1 MB text and binary) close with 1009.
  const big = "x".repeat(1024 * 1024);
  for (const frame of [big, `{"type":"message","message":"${big}"}`, new Uint8Array(1 << 20)]) {
    await using client = await TestClient.connect(server.url("/ws/chat"));
    await client.next(welcome);
    client.send(frame);
    assert.deepEqual(await client.closed, { code: 1009, reason: "Message too big" });
  }
  // Invalid UTF-8 and WebSocket protocol errors: Deno drops the connection.
  const violations: [number, number[]][] = [
    [0x1, [0x7b, 0x22, 0xc3, 0x28, 0x22, 0x7d]], // bad UTF-8 in a JSON string
    [0x1, [0xed, 0xa0, 0x80]], // an encoded surrogate
    [0x3, [1, 2, 3]], // reserved opcode
    [0x9, new Array(200).fill(0)], // control frame over 125 bytes
  ];
  for (const [opcode, bytes] of violations) {
    await using raw = await RawClient.connect(server.port);
    assert.equal((await raw.handshake("/ws/chat")).status, 101);
    await raw.sendFrame(opcode, new Uint8Array(bytes));
    assert.equal((await raw.readUntilClose()).code, 1006);
  }

  // The server is still up and serving.
  const health = await fetch(server.httpUrl("/healthz"));
  assert.equal(health.status, 200);
  await health.body?.cancel();
  await eventually("only Alice and Bob", () => server.app.manager.connectionCount === 2);
  alice.sendJson({ type: "message", message: "still fine" });
  await bob.next((f) => f.type === "message" && f.message === "still fine");
});

Deno.test("a client that never reads is closed with 4008 while others receive everything", async () => {
  await using server = await startServer({
    ...RELAXED,
    // Loopback absorbs a few MB before Deno buffers; past 256 KiB more it is a slow consumer.
    MAX_BUFFERED_BYTES: String(256 * 1024),
    HISTORY_ON_JOIN: "0",
  });
  await using slow = await RawClient.connect(server.port);
  assert.equal((await slow.handshake("/ws/chat/Slow")).status, 101);
  await using alice = await TestClient.connect(server.url("/ws/chat/Alice"));
  await using bob = await TestClient.connect(server.url("/ws/chat/Bob"));
  await alice.next(welcome);
  await bob.next(welcome);
  await eventually("3 in lobby", () => server.app.manager.users("lobby").length === 3);

  const before = Deno.memoryUsage();
  const body = "x".repeat(8000);
  const TOTAL = 2560; // 2560 * 8 KB = 20 MB to every member of the room
  const WINDOW = 16;
  // A window arrives in a few milliseconds: poll often, or the polling is most of the test.
  const WINDOW_POLL = { intervalMs: 1 };
  let sent = 0;
  const received = { alice: 0, bob: 0 };
  let slowLeft = 0;
  const leaves = (f: Frame) => f.type === "system" && f.event === "leave" && f.user === "Slow";
  // Counts and checks the order, then forgets the frames to keep the test's own memory flat.
  const tally = (client: TestClient, key: "alice" | "bob") => {
    for (const frame of client.frames.filter(messageFrom("Alice"))) {
      assert.equal(String(frame.message).slice(0, 12), `${received[key]} `.padEnd(12, "-"));
      received[key]++;
    }
    if (key === "bob") slowLeft += client.frames.filter(leaves).length;
    client.clear();
  };
  while (sent < TOTAL) {
    for (let i = 0; i < WINDOW; i++, sent++) {
      alice.sendJson({ type: "message", message: `${sent} `.padEnd(12, "-") + body });
    }
    // A window at a time, so only the slow socket can fall behind.
    await eventually(
      "Bob has the window",
      () => received.bob + bob.frames.filter(messageFrom("Alice")).length === sent,
      WINDOW_POLL,
    );
    await eventually(
      "Alice has the window",
      () => received.alice + alice.frames.filter(messageFrom("Alice")).length === sent,
      WINDOW_POLL,
    );
    tally(alice, "alice");
    tally(bob, "bob");
  }
  assert.deepEqual(received, { alice: TOTAL, bob: TOTAL });
  const metrics = server.app.manager.metrics;
  assert.equal(metrics.slowConsumerCloses, 1);
  assert.equal(metrics.closes.get(4008), 1);
  assert.deepEqual(server.app.manager.users("lobby"), ["Alice", "Bob"]);
  const after = Deno.memoryUsage();
  // Generous: without the close, the server would hold the rest of the 20 MB for Slow.
  const grown = (after.rss - before.rss) / 1e6;
  assert.ok(grown < 100, `rss grew by ${grown.toFixed(1)} MB`);

  // Reading at last, the slow client finds its messages end in a 4008 close.
  const end = await slow.readUntilClose();
  assert.equal(end.code, 4008);
  assert.equal(end.reason, "Slow consumer");
  assert.ok(end.texts < TOTAL, `slow client got ${end.texts} frames`);
  await eventually("Slow's leave", () => slowLeft + bob.frames.filter(leaves).length === 1);
});

Deno.test("MAX_CONNECTIONS + 50 attempts: the extras get 1008 Server is full", async () => {
  await using server = await startServer({ ...RELAXED, MAX_CONNECTIONS: "20" });
  await using alice = await TestClient.connect(server.url("/ws/chat/Alice"));
  await using bob = await TestClient.connect(server.url("/ws/chat/Bob"));
  await alice.next(welcome);
  await bob.next(welcome);
  alice.sendJson({ type: "message", message: "before" });

  const attempts = await Promise.all(
    Array.from({ length: 68 }, (_, i) => TestClient.connect(server.url(`/ws/chat/Flood${i}`))),
  );
  try {
    alice.sendJson({ type: "message", message: "during" });
    await Promise.all(
      attempts.map((c) =>
        eventually("a welcome or a close", () => c.frames.some(welcome) || !!c.closeInfo)
          .catch(() => undefined)
      ),
    );
    const accepted = attempts.filter((c) => c.frames.some(welcome));
    const refused = attempts.filter((c) => c.closeInfo !== undefined);
    assert.equal(accepted.length, 18);
    assert.equal(refused.length, 50);
    for (const c of refused) {
      assert.deepEqual(c.closeInfo, { code: 1008, reason: "Server is full" });
    }
    assert.equal(server.app.manager.connectionCount, 20);

    alice.sendJson({ type: "message", message: "after" });
    bob.sendJson({ type: "private", to: "Alice", message: "ok?" });
    await bob.next((f) => f.type === "message" && f.message === "after");
    await alice.next((f) => f.type === "private" && f.message === "ok?");
    const seen = bob.frames.filter(messageFrom("Alice")).map((f) => f.message);
    assert.deepEqual(seen, ["before", "during", "after"]);
    assert.equal(alice.closeInfo, undefined);
    assert.equal(bob.closeInfo, undefined);
  } finally {
    await Promise.all(attempts.map((c) => c.close()));
  }
  await eventually("flood gone", () => server.app.manager.connectionCount === 2);
  await using late = await TestClient.connect(server.url("/ws/chat/Late"));
  await late.next(welcome);
});

Deno.test("a half-open client that stops answering pings is closed by the idle timeout", async () => {
  await using server = await startServer({ ...RELAXED, IDLE_TIMEOUT_S: "1" });
  await using alice = await TestClient.connect(server.url("/ws/chat/Alice"));
  await alice.next(welcome);
  await using ghost = await RawClient.connect(server.port);
  assert.equal((await ghost.handshake("/ws/chat/Ghost")).status, 101);
  await ghost.sendText(JSON.stringify({ type: "message", message: "boo" }));
  await alice.next((f) => f.type === "message" && f.message === "boo");
  assert.equal(server.app.manager.connectionCount, 2);

  // Ghost now neither reads nor answers the server's pings; Alice's client answers them.
  await eventually("the idle timeout", () => server.app.manager.connectionCount === 1, {
    timeoutMs: 15_000,
  });
  assert.ok(server.app.manager.isOnline("Alice"));
  assert.ok(!server.app.manager.isOnline("Ghost"));
  await alice.next((f) => f.type === "system" && f.event === "leave" && f.user === "Ghost");
  alice.sendJson({ type: "message", message: "alone" });
  await alice.next((f) => f.type === "message" && f.message === "alone");
  assert.equal(alice.closeInfo, undefined);
});
