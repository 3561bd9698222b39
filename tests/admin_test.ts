import assert from "node:assert/strict";
import type { Scheduler } from "../chat/clock.ts";
import { ConnectionManager } from "../chat/connection_manager.ts";
import { createLogger } from "../chat/logger.ts";
import type { App } from "../main.ts";
import { startServer } from "./helpers/app_server.ts";
import { eventually } from "./helpers/eventually.ts";
import { FakeClock, FakeSocket, type Frame } from "./helpers/fakes.ts";
import { TestClient } from "./helpers/ws_client.ts";

const TOKEN = "admin-secret-0123456789abcdef";
const START_MS = Date.UTC(2030, 0, 1);
const WAIT_MS = 5000;

/** A client's system notices of one event. */
function notices(client: TestClient, event: string): Frame[] {
  return client.frames.filter((f) => f.type === "system" && f.event === event);
}

/** Waits until every frame the server sent `client` before this call has arrived. */
async function sync(client: TestClient): Promise<void> {
  const acks = () => client.frames.filter((f) => f.type === "heartbeat_ack").length;
  const before = acks();
  client.sendJson({ type: "heartbeat" });
  await eventually("a heartbeat_ack", () => acks() > before, { timeoutMs: WAIT_MS });
}

/** Whether `client` is still connected. */
const isOpen = (client: TestClient) => client.closeInfo === undefined;

interface Harness {
  app: App;
  base: string;
  lines: string[];
  clock: FakeClock;
  /** Connects and waits for `welcome`. */
  join(username: string, room?: string): Promise<TestClient>;
  /** Connects without waiting for `welcome`: for refused connections. */
  dial(username: string, room?: string): Promise<TestClient>;
  admin(method: string, path: string, body?: unknown, token?: string | null): Promise<Response>;
}

async function withServer(adminToken: string, fn: (h: Harness) => Promise<void>): Promise<void> {
  const lines: string[] = [];
  const clock = new FakeClock(START_MS);
  const logger = createLogger({ level: "info", write: (line) => lines.push(line) });
  await using server = await startServer({ ADMIN_TOKEN: adminToken }, { clock, logger });
  const clients: TestClient[] = [];
  const dial = async (username: string, room = "lobby") => {
    const path = `/ws/chat/${encodeURIComponent(username)}?room=${encodeURIComponent(room)}`;
    const client = await TestClient.connect(server.url(path));
    clients.push(client);
    return client;
  };
  const harness: Harness = {
    app: server.app,
    base: server.httpUrl(""),
    lines,
    clock,
    dial,
    async join(username, room) {
      const client = await dial(username, room);
      await client.next("welcome");
      return client;
    },
    admin(method, path, body, token = TOKEN) {
      const headers = new Headers();
      if (token !== null) headers.set("authorization", `Bearer ${token}`);
      return fetch(server.httpUrl(path), {
        method,
        headers,
        body: body === undefined
          ? undefined
          : typeof body === "string"
          ? body
          : JSON.stringify(body),
      });
    },
  };
  try {
    await fn(harness);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
}

/** Sends an admin request and returns its status and JSON body. */
async function call(
  h: Harness,
  method: string,
  path: string,
  body?: unknown,
  token?: string | null,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await h.admin(method, path, body, token);
  const text = await res.text();
  return { status: res.status, body: text === "" ? {} : JSON.parse(text) };
}

Deno.test("announce reaches one room or every room and is kept in history", async () => {
  await withServer(TOKEN, async (h) => {
    const alice = await h.join("alice", "a");
    const bob = await h.join("bob", "b");

    const one = await call(h, "POST", "/api/admin/announce", { message: "Maintenance", room: "a" });
    assert.equal(one.status, 200);
    assert.deepEqual(one.body.rooms, ["a"]);
    const notice = await alice.next((f) => f.type === "system" && f.event === "announce");
    assert.equal(notice.message, "Maintenance");
    assert.equal(notice.room, "a");
    await sync(bob);
    assert.equal(notices(bob, "announce").length, 0, "other rooms are untouched");

    const all = await call(h, "POST", "/api/admin/announce", { message: "Everyone" });
    assert.equal(all.status, 200);
    assert.deepEqual((all.body.rooms as string[]).toSorted(), ["a", "b"]);
    for (const client of [alice, bob]) {
      await client.next((f) => f.event === "announce" && f.message === "Everyone");
    }

    const late = await h.join("carol", "a");
    const welcome = late.frames[0]!;
    const history = welcome.history as Frame[];
    assert.ok(history.some((f) => f.event === "announce" && f.message === "Maintenance"));

    const unknown = await call(h, "POST", "/api/admin/announce", { message: "x", room: "nowhere" });
    assert.equal(unknown.status, 404);
  });
});

Deno.test("closing a room notifies its members and closes sockets only in that room", async () => {
  await withServer(TOKEN, async (h) => {
    const alice = await h.join("alice", "a");
    const bob = await h.join("bob", "a");
    bob.sendJson({ type: "join", room: "b" });
    await bob.next((f) => f.type === "joined" && f.room === "b");
    const carol = await h.join("carol", "c");

    const res = await call(h, "POST", "/api/admin/rooms/a/close", { reason: "Done for today" });
    assert.equal(res.status, 200);
    assert.equal(res.body.connections, 2);

    const notice = await alice.next((f) => f.type === "system" && f.event === "close");
    assert.equal(notice.message, "Done for today");
    assert.deepEqual(await alice.closed, { code: 4001, reason: "Room closed" });

    await bob.next((f) => f.type === "system" && f.event === "close" && f.room === "a");
    await bob.next((f) => f.type === "left" && f.room === "a");
    await sync(bob);
    assert.ok(isOpen(bob), "a socket in another room stays connected");

    await sync(carol);
    assert.equal(notices(carol, "close").length, 0);
    assert.ok(isOpen(carol));

    const rooms = h.app.manager.rooms().map((r) => r.room).toSorted();
    assert.deepEqual(rooms, ["b", "c"]);
    assert.equal((await call(h, "POST", "/api/admin/rooms/a/close")).status, 404);
  });
});

Deno.test("kick closes the user's connection with 4003 after a notice to their rooms", async () => {
  await withServer(TOKEN, async (h) => {
    const alice = await h.join("alice", "a");
    const bob = await h.join("bob", "a");
    const carol = await h.join("carol", "c");

    const res = await call(h, "POST", "/api/admin/users/Alice/kick", { reason: "spam" });
    assert.equal(res.status, 200);
    assert.equal(res.body.connections, 1);
    // The user's own spelling, not the path's.
    assert.equal(res.body.username, "alice");

    const notice = await alice.next((f) => f.type === "system" && f.event === "kick");
    assert.equal(notice.user, "alice");
    assert.equal(notice.message, "alice was kicked: spam");
    assert.deepEqual(await alice.closed, { code: 4003, reason: "Kicked" });
    await bob.next((f) => f.type === "system" && f.event === "kick" && f.user === "alice");
    await sync(carol);
    assert.equal(notices(carol, "kick").length, 0);

    // A kick is not a ban: the name may come straight back.
    const again = await h.join("alice", "a");
    assert.ok(isOpen(again));
    assert.equal((await call(h, "POST", "/api/admin/users/nobody/kick")).status, 404);
  });
});

Deno.test("a banned name is refused until the ban expires", async () => {
  await withServer(TOKEN, async (h) => {
    const alice = await h.join("alice", "a");
    const bob = await h.join("bob", "a");

    const res = await call(h, "POST", "/api/admin/users/ALICE/ban", {
      minutes: 10,
      reason: "abuse",
    });
    assert.equal(res.status, 200);
    assert.equal(res.body.until, new Date(START_MS + 600_000).toISOString());
    assert.equal(res.body.username, "alice");
    await alice.next((f) => f.type === "system" && f.event === "kick");
    assert.deepEqual(await alice.closed, { code: 4003, reason: "Banned" });
    await bob.next((f) => f.event === "kick" && f.message === "alice was banned: abuse");

    await assertRefused(h, "alice");
    await assertRefused(h, "ALICE");
    h.clock.time = START_MS + 599_999;
    await assertRefused(h, "alice");

    h.clock.time = START_MS + 600_000;
    const back = await h.join("alice", "a");
    assert.ok(isOpen(back));
  });
});

async function assertRefused(h: Harness, name: string): Promise<void> {
  const client = await h.dial(name, "a");
  assert.deepEqual(await client.closed, { code: 4003, reason: "Banned" });
  assert.equal(client.frames.length, 0, "a refused socket gets no welcome");
}

Deno.test("a ban covers the verified user id under any name", async (t) => {
  const clock = new FakeClock(START_MS);
  const timers: (() => void)[] = [];
  // Deferred closes run when the test flushes them, not on real timers.
  const scheduler: Scheduler = {
    setInterval: () => 0,
    clearInterval: () => {},
    setTimeout: (fn) => timers.push(fn),
    clearTimeout: () => {},
  };
  const flush = () => timers.splice(0).forEach((fn) => fn());
  await using manager = new ConnectionManager({ clock, scheduler, authenticated: true });
  const socket = () => new FakeSocket();

  const first = socket();
  manager.connect(first, { username: "alice", userId: "u-1" });
  manager.ban("alice", { untilMs: START_MS + 60_000 });
  assert.equal(await manager.kick("alice", { banned: true }), 1);
  flush();
  assert.deepEqual(first.closedWith, { code: 4003, reason: "Banned" });

  await t.step("same sub under another name", () => {
    const s = socket();
    manager.connect(s, { username: "alias", userId: "u-1" });
    flush();
    assert.deepEqual(s.closedWith, { code: 4003, reason: "Banned" });
  });
  await t.step("same name under another sub", () => {
    const s = socket();
    manager.connect(s, { username: "Alice", userId: "u-2" });
    flush();
    assert.deepEqual(s.closedWith, { code: 4003, reason: "Banned" });
  });
  await t.step("after expiry", () => {
    clock.time = START_MS + 60_000;
    const s = socket();
    manager.connect(s, { username: "alias", userId: "u-1" });
    flush();
    assert.equal(s.closedWith, undefined);
  });
  await t.step("unban lifts it early", () => {
    manager.ban("bob", { untilMs: START_MS + 3_600_000 });
    assert.equal(manager.unban("BOB"), true);
    const s = socket();
    manager.connect(s, { username: "bob" });
    flush();
    assert.equal(s.closedWith, undefined);
    assert.equal(manager.unban("bob"), false);
  });
});

Deno.test("connections lists every connection with its counters", async () => {
  await withServer(TOKEN, async (h) => {
    const alice = await h.join("alice", "a");
    alice.sendJson({ type: "join", room: "b" });
    await alice.next((f) => f.type === "joined");
    const res = await call(h, "GET", "/api/admin/connections");
    assert.equal(res.status, 200);
    assert.equal(res.body.count, 1);
    const [conn] = res.body.connections as Record<string, unknown>[];
    assert.equal(conn?.username, "alice");
    assert.deepEqual(conn?.rooms, ["a", "b"]);
    assert.equal(conn?.remote_addr, "127.0.0.1");
    assert.equal(conn?.connected_since, new Date(START_MS).toISOString());
    assert.equal(conn?.frames_in, 1);
    assert.ok((conn?.frames_out as number) >= 2);
    assert.equal(typeof conn?.id, "string");
  });
});

Deno.test("bad bodies are refused with 400 naming the field", async (t) => {
  await withServer(TOKEN, async (h) => {
    const alice = await h.join("alice", "a");
    const cases: [string, string, unknown, string][] = [
      ["non-JSON announce", "/api/admin/announce", "{not json", "body"],
      ["array body", "/api/admin/announce", [1], "body"],
      ["missing message", "/api/admin/announce", {}, "message"],
      ["empty message", "/api/admin/announce", { message: "  " }, "message"],
      ["message of wrong type", "/api/admin/announce", { message: 5 }, "message"],
      ["message too large", "/api/admin/announce", { message: "x".repeat(20_000) }, "message"],
      ["room of wrong type", "/api/admin/announce", { message: "hi", room: 3 }, "room"],
      ["reason of wrong type", "/api/admin/rooms/a/close", { reason: true }, "reason"],
      ["reason too long", "/api/admin/users/alice/kick", { reason: "r".repeat(500) }, "reason"],
      ["negative minutes", "/api/admin/users/alice/ban", { minutes: -1 }, "minutes"],
      ["zero minutes", "/api/admin/users/alice/ban", { minutes: 0 }, "minutes"],
      ["minutes as text", "/api/admin/users/alice/ban", { minutes: "5" }, "minutes"],
      ["minutes too large", "/api/admin/users/alice/ban", { minutes: 1e9 }, "minutes"],
      ["invalid user name", "/api/admin/users/a%7Cb/kick", {}, "username"],
    ];
    for (const [name, path, body, field] of cases) {
      await t.step(name, async () => {
        const res = await call(h, "POST", path, body);
        assert.equal(res.status, 400);
        assert.equal(res.body.field, field);
        assert.match(res.body.error as string, new RegExp(`^Invalid ${field}`));
      });
    }
    await t.step("body over 64 KiB is 413", async () => {
      const res = await call(h, "POST", "/api/admin/announce", { message: "x".repeat(70_000) });
      assert.equal(res.status, 413);
    });
    await sync(alice);
    assert.ok(isOpen(alice), "refused requests change nothing");
    assert.equal(alice.frames.filter((f) => f.type === "system" && f.user !== "alice").length, 0);
  });
});

Deno.test("every endpoint refuses a missing or wrong token without side effects", async (t) => {
  await withServer(TOKEN, async (h) => {
    const alice = await h.join("alice", "a");
    const endpoints: [string, string, unknown][] = [
      ["POST", "/api/admin/announce", { message: "hi" }],
      ["POST", "/api/admin/rooms/a/close", {}],
      ["POST", "/api/admin/users/alice/kick", {}],
      ["POST", "/api/admin/users/alice/ban", { minutes: 5 }],
      ["GET", "/api/admin/connections", undefined],
    ];
    const tokens: [string, string | null][] = [
      ["missing", null],
      ["wrong", "wrong-secret"],
      ["prefix of the real one", TOKEN.slice(0, -1)],
      ["real one plus a character", `${TOKEN}x`],
    ];
    for (const [label, token] of tokens) {
      await t.step(`${label} token`, async () => {
        // A fresh minute per step: ten failures a minute lock an address out (tested below).
        h.clock.time += 60_000;
        for (const [method, path, body] of endpoints) {
          const res = await call(h, method, path, body, token);
          assert.equal(res.status, 401, `${method} ${path}`);
          assert.equal(res.body.connections, undefined);
        }
      });
    }
    await t.step("Basic scheme", async () => {
      h.clock.time += 60_000;
      const res = await fetch(`${h.base}/api/admin/connections`, {
        headers: { authorization: `Basic ${TOKEN}` },
      });
      await res.body?.cancel();
      assert.equal(res.status, 401);
    });
    await sync(alice);
    assert.ok(isOpen(alice));
    assert.equal(notices(alice, "announce").length + notices(alice, "kick").length, 0);
    assert.deepEqual(h.app.manager.rooms().map((r) => r.room), ["a"]);
    const again = await h.join("bob", "a");
    assert.equal((again.frames[0]!.history as Frame[]).some((f) => f.event === "announce"), false);
  });
});

Deno.test("without ADMIN_TOKEN every admin path is 404", async () => {
  await withServer("", async (h) => {
    await h.join("alice", "a");
    for (
      const [method, path] of [
        ["POST", "/api/admin/announce"],
        ["POST", "/api/admin/rooms/a/close"],
        ["POST", "/api/admin/users/alice/kick"],
        ["POST", "/api/admin/users/alice/ban"],
        ["GET", "/api/admin/connections"],
      ]
    ) {
      const body = method === "POST" ? { message: "x" } : undefined;
      const res = await h.admin(method!, path!, body, TOKEN);
      await res.body?.cancel();
      assert.equal(res.status, 404, `${method} ${path}`);
    }
    assert.equal(h.app.manager.connectionCount, 1);
  });
});

Deno.test("admin actions are logged with the token fingerprint, never the token", async () => {
  await withServer(TOKEN, async (h) => {
    await h.join("alice", "a");
    await call(h, "POST", "/api/admin/announce", { message: "hi", room: "a" });
    await call(h, "POST", "/api/admin/users/alice/kick", { reason: "test" });
    await call(h, "GET", "/api/admin/connections", undefined, "wrong-secret-guess");

    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(TOKEN));
    const fingerprint = [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0"))
      .join("").slice(0, 8);
    const admin = h.lines.map((l) => JSON.parse(l)).filter((l) => l.event === "admin");
    assert.deepEqual(admin.map((l) => [l.action, l.target]), [["announce", "a"], [
      "kick",
      "alice",
    ]]);
    for (const line of admin) assert.equal(line.token_fingerprint, fingerprint);
    for (const line of h.lines) {
      assert.ok(!line.includes(TOKEN), "the token is never logged");
      assert.ok(!line.includes("wrong-secret-guess"), "nor a wrong guess");
    }
    assert.ok(h.lines.some((l) => l.includes('"admin_unauthorized"')));
  });
});

Deno.test("ten failed tokens from one address in a minute lock it out with 429 and Retry-After", async (t) => {
  await withServer(TOKEN, async (h) => {
    await t.step("ten wrong tokens are 401", async () => {
      for (let i = 0; i < 10; i++) {
        const res = await call(h, "GET", "/api/admin/connections", undefined, `guess-${i}`);
        assert.equal(res.status, 401, `attempt ${i + 1}`);
      }
    });
    await t.step("the eleventh is 429 with a Retry-After in seconds", async () => {
      const res = await h.admin("GET", "/api/admin/connections", undefined, "guess-10");
      assert.equal(res.status, 429);
      const retryAfter = Number(res.headers.get("retry-after"));
      assert.ok(
        Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60,
        `${retryAfter}`,
      );
      assert.match((await res.json()).error, /^Too many failed admin requests/);
    });
    await t.step("the right token from that address is refused too", async () => {
      const res = await call(h, "GET", "/api/admin/connections");
      assert.equal(res.status, 429);
      assert.equal(res.body.connections, undefined);
    });
    await t.step("after the window the right token works again", async () => {
      h.clock.time += 60_000;
      const res = await call(h, "GET", "/api/admin/connections");
      assert.equal(res.status, 200);
    });
  });
});

/**
 * POSTs a chunked body of `chunks` KiB over raw TCP, one KiB at a time,
 * stopping as soon as the response head arrives. Returns its status and how
 * many chunks went out before it.
 */
async function chunkedUpload(
  port: number,
  path: string,
  chunks: number,
): Promise<{ status: number; sent: number }> {
  const encoder = new TextEncoder();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const head = [
    `POST ${path} HTTP/1.1`,
    `Host: 127.0.0.1:${port}`,
    `Authorization: Bearer ${TOKEN}`,
    "Content-Type: application/json",
    "Transfer-Encoding: chunked",
  ].join("\r\n") + "\r\n\r\n";
  await conn.write(encoder.encode(head));
  let response: string | undefined;
  const reading = (async () => {
    let text = "";
    const buffer = new Uint8Array(4096);
    while (!text.includes("\r\n\r\n")) {
      const n = await conn.read(buffer).catch(() => null);
      if (n === null) break;
      text += new TextDecoder().decode(buffer.subarray(0, n));
    }
    response = text;
  })();
  const chunk = encoder.encode(`400\r\n${"x".repeat(1024)}\r\n`);
  let sent = 0;
  try {
    while (sent < chunks && response === undefined) {
      await conn.write(chunk);
      sent++;
      // Time for the server to answer between chunks, as a slow client leaves.
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    if (response === undefined) await conn.write(encoder.encode("0\r\n\r\n"));
  } catch {
    // The server may close the connection after its answer.
  }
  await reading;
  conn.close();
  return { status: Number(response?.split(" ")[1]), sent };
}

Deno.test("an admin body over 64 KiB is refused with 413 while it streams in", async (t) => {
  await withServer(TOKEN, async (h) => {
    const port = Number(new URL(h.base).port);
    await t.step("a chunked body of 100 KiB is cut off near the cap", async () => {
      const { status, sent } = await chunkedUpload(port, "/api/admin/announce", 100);
      assert.equal(status, 413);
      assert.ok(sent < 100, `the answer came before the whole body was sent (${sent} KiB sent)`);
      assert.ok(sent >= 64, `${sent} KiB sent`);
    });
    await t.step("a declared Content-Length over the cap is refused before reading", async () => {
      const res = await call(h, "POST", "/api/admin/announce", { message: "x".repeat(70_000) });
      assert.equal(res.status, 413);
    });
    await t.step("a body under the cap still works", async () => {
      const res = await call(h, "POST", "/api/admin/announce", { message: "hi" });
      assert.equal(res.status, 200);
    });
  });
});
