import assert from "node:assert/strict";
import { RedisClient } from "../chat/engines/redis_client.ts";
import {
  encodeCommand,
  RedisError,
  type RedisReply,
  RespParser,
} from "../chat/engines/redis_resp.ts";
import { parseRedisUrl } from "../chat/engines/redis_url.ts";

const encoder = new TextEncoder();

function parseAll(chunks: Uint8Array[]): RedisReply[] {
  const replies: RedisReply[] = [];
  const parser = new RespParser((reply) => replies.push(reply));
  for (const chunk of chunks) parser.feed(chunk);
  return replies;
}

Deno.test("parseRedisUrl reads host, port, credentials, db and TLS", async (t) => {
  await t.step("defaults", () => {
    assert.deepEqual(parseRedisUrl("redis://localhost"), {
      hostname: "localhost",
      port: 6379,
      tls: false,
      db: 0,
    });
  });
  await t.step("full URL with percent-encoded password", () => {
    assert.deepEqual(parseRedisUrl("rediss://alice:p%40ss@cache.example:6380/3"), {
      hostname: "cache.example",
      port: 6380,
      tls: true,
      username: "alice",
      password: "p@ss",
      db: 3,
    });
  });
  await t.step("password without user name", () => {
    const options = parseRedisUrl("redis://:secret@127.0.0.1:7000/");
    assert.equal(options.password, "secret");
    assert.equal(options.username, undefined);
    assert.equal(options.db, 0);
  });
  await t.step("IPv6 host", () => {
    assert.equal(parseRedisUrl("redis://[::1]:6379").hostname, "[::1]");
  });
  await t.step("bad URLs throw TypeError with the password masked", () => {
    for (
      const url of [
        "http://localhost:6379",
        "redis://",
        "redis://host:notaport",
        "redis://host:70000",
        "redis://host/abc",
        "redis://host/1?x=y",
        "not a url",
      ]
    ) {
      assert.throws(() => parseRedisUrl(url), new TypeError(`Invalid Redis URL: ${url}`));
    }
    assert.throws(
      () => parseRedisUrl("redis://bob:hunter2@host:nope/0"),
      (error: unknown) =>
        error instanceof TypeError &&
        error.message === "Invalid Redis URL: redis://bob:***@host:nope/0",
    );
  });
  await t.step("client options reject an invalid port", () => {
    assert.throws(() => new RedisClient({ port: 0 }), new RangeError("Invalid port: 0"));
  });
});

/** A stream of RESP2 replies of every type, with the values it decodes to. */
function mixedReplies(): { wire: Uint8Array; expected: RedisReply[] } {
  const wire = encoder.encode(
    "+OK\r\n" +
      "-ERR bad thing\r\n" +
      ":-42\r\n" +
      "$-1\r\n" +
      "*-1\r\n" +
      "$0\r\n\r\n" +
      "*0\r\n" +
      "$9\r\nh\u00e9\r\n\u{1F44B}\r\n" + // 9 bytes: h, 2-byte é, CRLF, 4-byte emoji
      "*3\r\n:1\r\n*2\r\n$1\r\na\r\n-WRONGTYPE nested\r\n$3\r\nend\r\n",
  );
  const expected: RedisReply[] = [
    "OK",
    new RedisError("ERR bad thing"),
    -42,
    null,
    null,
    "",
    [],
    "h\u00e9\r\n\u{1F44B}",
    [1, ["a", new RedisError("WRONGTYPE nested")], "end"],
  ];
  return { wire, expected };
}

Deno.test("RespParser handles any split of the byte stream", async (t) => {
  const { wire, expected } = mixedReplies();

  await t.step("all replies in one read", () => {
    assert.deepEqual(parseAll([wire]), expected);
  });
  await t.step("one byte per read", () => {
    const chunks = Array.from(wire, (byte) => Uint8Array.of(byte));
    assert.deepEqual(parseAll(chunks), expected);
  });
  await t.step("every two-way split", () => {
    for (let i = 1; i < wire.length; i++) {
      assert.deepEqual(parseAll([wire.subarray(0, i), wire.subarray(i)]), expected);
    }
  });
  await t.step("bulk string larger than the initial buffer", () => {
    const big = "x".repeat(100_000);
    const bytes = encoder.encode(`$${big.length}\r\n${big}\r\n+after\r\n`);
    const chunks: Uint8Array[] = [];
    for (let i = 0; i < bytes.length; i += 4096) chunks.push(bytes.subarray(i, i + 4096));
    assert.deepEqual(parseAll(chunks), [big, "after"]);
  });
  await t.step("RESP3 types", () => {
    const resp3 = encoder.encode(
      "_\r\n#t\r\n#f\r\n,3.5\r\n,-inf\r\n(12345678901234567890\r\n" +
        "=8\r\ntxt:abcd\r\n%1\r\n+k\r\n:2\r\n~2\r\n+a\r\n+b\r\n" +
        "|1\r\n+ttl\r\n:9\r\n+value\r\n>2\r\n+message\r\n+x\r\n!7\r\nERR boo\r\n",
    );
    assert.deepEqual(parseAll([resp3]), [
      null,
      1,
      0,
      3.5,
      -Infinity,
      "12345678901234567890",
      "abcd",
      ["k", 2],
      ["a", "b"],
      "value",
      ["message", "x"],
      new RedisError("ERR boo"),
    ]);
  });
  await t.step("malformed input throws", () => {
    assert.throws(() => parseAll([encoder.encode("?what\r\n")]), /Redis protocol error/);
    assert.throws(() => parseAll([encoder.encode(":12a\r\n")]), /Redis protocol error/);
  });
});

Deno.test("encodeCommand counts bulk lengths in bytes", async (t) => {
  await t.step("strings, numbers and bytes", () => {
    const encoded = encodeCommand(["SET", "k\u00e9", 12, Uint8Array.of(0, 13, 10)]);
    const expected = new Uint8Array([
      ...encoder.encode("*4\r\n$3\r\nSET\r\n$3\r\nk\u00e9\r\n$2\r\n12\r\n$3\r\n"),
      0,
      13,
      10,
      13,
      10,
    ]);
    assert.deepEqual(encoded, expected);
  });
  await t.step("invalid arguments", () => {
    assert.throws(() => encodeCommand([]), TypeError);
    assert.throws(() => encodeCommand(["INCRBY", "k", NaN]), RangeError);
  });
});
