import assert from "node:assert/strict";
import { createApp } from "../app.ts";
import { signJwt } from "../chat/auth/jwt.ts";
import { loadConfig } from "../chat/config.ts";
import type { LogFields, Logger } from "../chat/logger.ts";
import { startServer } from "./helpers/app_server.ts";
import { RawClient, rawRequest } from "./helpers/raw_http.ts";

const SECRET = "handshake-edge-secret-0123456789abcdef";
const RELAXED = { HANDSHAKES_PER_IP_PER_MIN: "10000", MAX_CONNECTIONS_PER_IP: "1000" };
const KEY = "dGhlIHNhbXBsZSBub25jZQ==";
const nowS = () => Math.floor(Date.now() / 1000);
const decoder = new TextDecoder();

function token(name: string): Promise<string> {
  return signJwt({ sub: `id-${name}`, name, iat: nowS(), exp: nowS() + 600 }, SECRET);
}

/**
 * The app on a free port with a logger that keeps every line at every level
 * as it was given: not the real logger, whose redaction would hide what the
 * app itself logs.
 */
async function serveLogged(env: Record<string, string>) {
  const lines: string[] = [];
  const record = (level: string) => (event: string, fields?: LogFields) =>
    lines.push(JSON.stringify({ level, event, ...fields }));
  const logger: Logger = {
    debug: record("debug"),
    info: record("info"),
    warn: record("warn"),
    error: record("error"),
  };
  const app = await createApp(loadConfig({ CHAT_ENGINE: "memory", ...RELAXED, ...env }), {
    logger,
  });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, app.handler);
  return {
    app,
    lines,
    port: server.addr.port,
    async [Symbol.asyncDispose]() {
      await app[Symbol.asyncDispose]();
      await server.shutdown();
    },
  };
}

Deno.test("an upgrade missing Connection or Sec-WebSocket-Key is 400 with a clear text", async (t) => {
  await using server = await serveLogged({ AUTH_SECRET: SECRET });
  const jwt = await token("Alice");
  const cases: [string, Record<string, string>, string][] = [
    [
      "no Connection",
      { Upgrade: "websocket", "Sec-WebSocket-Key": KEY, "Sec-WebSocket-Version": "13" },
      "Invalid WebSocket handshake, Connection must include Upgrade: none",
    ],
    [
      "Connection without Upgrade",
      {
        Upgrade: "websocket",
        Connection: "keep-alive",
        "Sec-WebSocket-Key": KEY,
        "Sec-WebSocket-Version": "13",
      },
      "Invalid WebSocket handshake, Connection must include Upgrade: keep-alive",
    ],
    [
      "no Sec-WebSocket-Key",
      { Upgrade: "websocket", Connection: "Upgrade", "Sec-WebSocket-Version": "13" },
      "Invalid WebSocket handshake, Sec-WebSocket-Key must be 16 bytes in base64: none",
    ],
    [
      "a Sec-WebSocket-Key that is not 16 bytes in base64",
      {
        Upgrade: "websocket",
        Connection: "Upgrade",
        "Sec-WebSocket-Key": "x",
        "Sec-WebSocket-Version": "13",
      },
      "Invalid WebSocket handshake, Sec-WebSocket-Key must be 16 bytes in base64: x",
    ],
  ];
  for (const [name, headers, message] of cases) {
    await t.step(name, async () => {
      for (const path of ["/ws", "/ws/chat/Alice", `/ws/rooms/red?token=${jwt}`]) {
        const res = await rawRequest({ port: server.port, path, headers });
        assert.equal(res.status, 400, `${path}: ${res.body}`);
        assert.equal(res.body, message);
      }
    });
  }
  await t.step("Firefox's Connection: keep-alive, Upgrade is still upgraded", async () => {
    const headers = {
      Upgrade: "websocket",
      Connection: "keep-alive, upgrade",
      "Sec-WebSocket-Key": KEY,
      "Sec-WebSocket-Version": "13",
    };
    const res = await rawRequest({ port: server.port, path: `/ws?token=${jwt}`, headers });
    assert.equal(res.status, 101);
    assert.equal(res.headers.get("sec-websocket-accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  });
  assert.equal(server.lines.filter((l) => l.includes('"level":"error"')).length, 0);
});

Deno.test("no log line contains a token", async (t) => {
  await using server = await serveLogged({ AUTH_SECRET: SECRET });
  const jwt = await token("Alice");

  await t.step("a broken handshake with ?token=", async () => {
    const headers = { Upgrade: "websocket", "Sec-WebSocket-Key": KEY };
    await rawRequest({ port: server.port, path: `/ws/chat?room=a&token=${jwt}`, headers });
    await rawRequest({ port: server.port, path: `/ws?access_token=${jwt}`, headers });
  });

  await t.step("an unexpected error logs the URL without its token", async () => {
    const req = new Request(`http://127.0.0.1/ws/chat?token=${jwt}&room=a`, {
      headers: { upgrade: "websocket", connection: "Upgrade", "sec-websocket-key": KEY },
    });
    // An info that throws stands in for any bug below the handler.
    const info = {
      get remoteAddr(): Deno.NetAddr {
        throw new Error("Broken connection info");
      },
    } as unknown as Deno.ServeHandlerInfo;
    const res = await server.app.handler(req, info);
    await res.body?.cancel();
    assert.equal(res.status, 500);
    const failed = server.lines.map((l) => JSON.parse(l)).find((l) => l.event === "request_failed");
    assert.equal(failed?.url, "http://127.0.0.1/ws/chat?token=[redacted]&room=a");
  });

  const signature = jwt.split(".")[2]!;
  assert.ok(server.lines.length > 0);
  for (const line of server.lines) assert.ok(!line.includes(signature), line);
});

Deno.test("subprotocols listed without spaces are accepted and the bearer token works", async (t) => {
  await using server = await startServer({ AUTH_SECRET: SECRET, ...RELAXED });

  const offer = async (path: string, protocols: string) => {
    await using raw = await RawClient.connect(server.port);
    const res = await raw.handshake(path, { "Sec-WebSocket-Protocol": protocols });
    const frame = res.status === 101 ? await raw.readFrame() : null;
    return {
      status: res.status,
      protocol: res.headers.get("sec-websocket-protocol"),
      first: frame && frame.opcode === 1 ? JSON.parse(decoder.decode(frame.payload)) : null,
    };
  };

  await t.step("chat,bearer.<jwt> is answered with chat and admits the token's user", async () => {
    const got = await offer("/ws/chat", `chat,bearer.${await token("Alice")}`);
    assert.equal(got.status, 101);
    assert.equal(got.protocol, "chat");
    assert.equal(got.first?.type, "welcome");
    assert.equal(got.first?.username, "Alice");
  });

  await t.step("the token first and odd spacing: bearer.<jwt> ,chat", async () => {
    const got = await offer("/ws/rooms/garden", `bearer.${await token("Bob")} ,chat`);
    assert.equal(got.status, 101);
    assert.equal(got.protocol, "chat");
    assert.equal(got.first?.username, "Bob");
    assert.equal(got.first?.room, "garden");
  });

  await t.step("the spaced spelling still works", async () => {
    const got = await offer("/ws/chat", `chat, bearer.${await token("Carol")}`);
    assert.equal(got.status, 101);
    assert.equal(got.protocol, "chat");
    assert.equal(got.first?.username, "Carol");
  });

  await t.step("a bad token offered as chat,bearer.x closes with 1008 Unauthorized", async () => {
    await using raw = await RawClient.connect(server.port);
    const res = await raw.handshake("/ws/chat", { "Sec-WebSocket-Protocol": "chat,bearer.x" });
    assert.equal(res.status, 101);
    assert.equal(res.headers.get("sec-websocket-protocol"), "chat");
    const closed = await raw.readUntilClose();
    assert.deepEqual({ code: closed.code, reason: closed.reason }, {
      code: 1008,
      reason: "Unauthorized",
    });
  });
});

Deno.test("without AUTH_SECRET a comma list without spaces is answered with its first entry", async () => {
  await using server = await startServer(RELAXED);
  await using raw = await RawClient.connect(server.port);
  const res = await raw.handshake("/ws/chat/Dave", { "Sec-WebSocket-Protocol": "chat,v2.chat" });
  assert.equal(res.status, 101);
  assert.equal(res.headers.get("sec-websocket-protocol"), "chat");
  const frame = await raw.readFrame();
  assert.equal(JSON.parse(decoder.decode(frame!.payload)).username, "Dave");
});
