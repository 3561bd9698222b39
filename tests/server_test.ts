import assert from "node:assert/strict";
import { preferVectoredWrites } from "../app.ts";
import { startServer } from "./helpers/app_server.ts";
import type { Frame } from "./helpers/fakes.ts";
import { eventually } from "./helpers/eventually.ts";
import { TestClient } from "./helpers/ws_client.ts";

/** A fresh marker, to show by its arrival that an earlier frame was not delivered. */
function marker(): string {
  return `marker ${crypto.randomUUID()}`;
}

const isMessage = (text: string) => (f: Frame) => f.type === "message" && f.message === text;

Deno.test("/ws echoes to the sending client only", async () => {
  await using s = await startServer();
  await using a = await TestClient.connect(s.url("/ws"));
  await using b = await TestClient.connect(s.url("/ws"));
  a.send("hello");
  assert.equal(await a.nextText((t) => t.startsWith("Echo:")), "Echo: hello");
  b.send("mine");
  assert.equal(await b.nextText(() => true), "Echo: mine", "b got nothing of a's");
  a.send('{"type":"message","message":"json too"}');
  assert.equal(
    await a.nextText((t) => t.startsWith("Echo:")),
    'Echo: {"type":"message","message":"json too"}',
  );
});

Deno.test("/ws/chat names users User N, renames and broadcasts to all", async () => {
  await using s = await startServer();
  await using a = await TestClient.connect(s.url("/ws/chat"));
  const wa = await a.next("welcome");
  await using b = await TestClient.connect(s.url("/ws/chat"));
  const wb = await b.next("welcome");
  assert.match(String(wa.username), /^User \d+$/);
  assert.match(String(wb.username), /^User \d+$/);
  assert.notEqual(wa.username, wb.username);
  assert.equal(wa.room, "lobby");
  assert.equal(wa.heartbeat, null);
  assert.deepEqual(wb.users, [wa.username, wb.username]);

  a.sendJson({ type: "rename", name: "Ada" });
  for (const c of [a, b]) {
    const notice = await c.next((f) => f.type === "system" && f.event === "rename");
    assert.equal(notice.old_name, wa.username);
    assert.equal(notice.user, "Ada");
  }
  b.sendJson({ type: "rename", name: "ada" });
  assert.equal((await b.next("error")).code, "name_taken");

  a.send("plain text works");
  for (const c of [a, b]) {
    const m = await c.next(isMessage("plain text works"));
    assert.equal(m.sender, "Ada");
    assert.equal(m.username, "Ada");
    assert.equal(m.room, "lobby");
    assert.ok(!Number.isNaN(Date.parse(String(m.timestamp))));
  }
});

Deno.test("/ws/chat/{username}: private messages, users and name rules", async (t) => {
  await using s = await startServer();
  await using alice = await TestClient.connect(s.url("/ws/chat/alice"));
  await alice.next("welcome");
  await using bob = await TestClient.connect(s.url(`/ws/chat/${encodeURIComponent("Bob Ünal")}`));
  assert.equal((await bob.next("welcome")).username, "Bob Ünal");
  await using carol = await TestClient.connect(s.url("/ws/chat/carol"));
  await carol.next("welcome");

  await t.step("a private message reaches its target and echoes to its sender", async () => {
    alice.sendJson({ type: "message", message: "psst", target_user: "bob ünal" });
    for (const c of [alice, bob]) {
      const p = await c.next("private");
      assert.equal(p.message, "psst");
      assert.equal(p.username, "alice");
      assert.equal(p.to, "Bob Ünal");
    }
    const text = marker();
    alice.send(text);
    await carol.next(isMessage(text));
    assert.ok(!carol.frames.some((f) => f.type === "private"), "carol saw the private message");
  });

  await t.step("a private message to someone offline is an error", async () => {
    alice.sendJson({ type: "private", to: "nobody", message: "hi" });
    assert.equal((await alice.next("error")).code, "user_not_found");
  });

  await t.step("users lists the room", async () => {
    carol.sendJson({ type: "users" });
    const users = await carol.next("users");
    assert.deepEqual(users.users, ["alice", "Bob Ünal", "carol"]);
    assert.equal(users.connected_count, 3);
  });

  await t.step("a name already online is refused with 4009", async () => {
    await using dup = await TestClient.connect(s.url("/ws/chat/ALICE"));
    const closed = await dup.waitClosed();
    assert.equal(closed.code, 4009);
    assert.equal(closed.reason, "Username already in use");
  });

  await t.step("an invalid name is refused with 1008 and a reason", async () => {
    for (const name of ["System", "a%2Fb", "x".repeat(33), "%3Cb%3E"]) {
      await using bad = await TestClient.connect(s.url(`/ws/chat/${name}`));
      const closed = await bad.waitClosed();
      assert.equal(closed.code, 1008, name);
      assert.match(closed.reason, /^Invalid username/);
    }
  });
});

Deno.test("/ws/chat/{username}/heartbeat pings, acks and closes a silent client", async () => {
  // A timeout of several intervals keeps a loaded machine from timing out the pong phase.
  await using s = await startServer({ HEARTBEAT_INTERVAL_MS: "50", HEARTBEAT_TIMEOUT_MS: "400" });
  await using c = await TestClient.connect(s.url("/ws/chat/dora/heartbeat"));
  const welcome = await c.next("welcome");
  assert.deepEqual(welcome.heartbeat, { interval_ms: 50, timeout_ms: 400 });
  c.sendJson({ type: "heartbeat" });
  const ack = await c.next("heartbeat_ack");
  assert.equal(typeof ack.server_time, "string");
  for (let i = 0; i < 3; i++) {
    const ping = await c.next("ping");
    assert.equal(typeof ping.server_time, "string");
    c.sendJson({ type: "pong" });
  }
  // From here the client stays silent.
  const closed = await c.waitClosed();
  assert.equal(closed.code, 4000);
  assert.equal(closed.reason, "Heartbeat timeout");
});

Deno.test("/ws/chat without heartbeat gets no pings", async () => {
  await using s = await startServer({ HEARTBEAT_INTERVAL_MS: "20", HEARTBEAT_TIMEOUT_MS: "40" });
  await using beat = await TestClient.connect(s.url("/ws/chat/beat/heartbeat"));
  await using plain = await TestClient.connect(s.url("/ws/chat/plain"));
  await plain.next("welcome");
  // The heartbeat client's timeout shows that the sweep ran several times meanwhile.
  assert.equal((await beat.waitClosed()).code, 4000);
  plain.send("still here");
  await plain.next(isMessage("still here"));
  assert.ok(!plain.frames.some((f) => f.type === "ping"));
});

Deno.test("?batch=1 sends several frames as one, a JSON object per line, on every chat route", async (t) => {
  await using s = await startServer({ RATE_LIMIT_PER_S: "10000", RATE_LIMIT_BURST: "10000" });
  const paths = [
    "/ws/chat?batch=1",
    "/ws/chat/batched?batch=1",
    "/ws/chat/beat/heartbeat?batch=1",
    "/ws/rooms/lobby?batch=1",
  ];
  for (const path of paths) {
    await t.step(path, async () => {
      await using batched = await TestClient.connect(s.url(path));
      const { texts } = batched;
      const lines = () =>
        texts.flatMap((text) => text.split("\n")).map((l) => JSON.parse(l) as Frame);
      await eventually("welcome", () => lines().some((f) => f.type === "welcome"));
      await using a = await TestClient.connect(s.url("/ws/chat/alice"));
      await using b = await TestClient.connect(s.url("/ws/chat/bob"));
      await using c = await TestClient.connect(s.url("/ws/chat/carol"));
      const senders = [a, b, c];
      for (const sender of senders) await sender.next("welcome");
      // The server batches what one turn of its event loop makes: frames
      // from several sockets sent at once usually land in one turn, and a
      // few rounds make sure.
      const said: string[] = [];
      for (let round = 0; round < 20 && !texts.some((t) => t.includes("\n")); round++) {
        for (const sender of senders) {
          said.push(`${round} ${said.length}`);
          sender.sendJson({ type: "message", message: said.at(-1) });
        }
        // Frames of different sockets keep no order: wait for all of them.
        await eventually("the round", () => {
          const got = new Set(lines().map((f) => f.message));
          return said.every((m) => got.has(m));
        });
      }
      assert.ok(texts.some((t) => t.includes("\n")), "no frame held more than one message");
      const got = lines().filter((f) => f.type === "message").map((f) => f.message as string);
      assert.deepEqual(got.toSorted(), said.toSorted());
      // The senders did not ask for batches: each of their frames is one object.
      const [first] = senders;
      await eventually(
        "a's copies",
        () => first!.frames.filter((f) => f.type === "message").length === said.length,
      );
    });
  }
});

Deno.test("rooms: /ws/rooms/{room}, ?room= and in-band join never cross", async (t) => {
  await using s = await startServer();
  await using red1 = await TestClient.connect(s.url("/ws/rooms/red"));
  await using red2 = await TestClient.connect(s.url("/ws/chat/rosa?room=red"));
  await using blue = await TestClient.connect(s.url("/ws/rooms/blue"));
  assert.equal((await red1.next("welcome")).room, "red");
  assert.equal((await red2.next("welcome")).room, "red");
  assert.equal((await blue.next("welcome")).room, "blue");

  await t.step("a message stays in its room", async () => {
    red1.send("only red");
    await red2.next(isMessage("only red"));
    const text = marker();
    blue.send(text);
    await blue.next(isMessage(text));
    assert.ok(!blue.frames.some((f) => f.message === "only red"));
    assert.ok(!red2.frames.some((f) => f.message === text));
  });

  await t.step("join adds a room to the socket, leave removes it", async () => {
    blue.sendJson({ type: "join", room: "red" });
    const joined = await blue.next("joined");
    assert.equal(joined.room, "red");
    assert.equal((joined.users as string[]).length, 3);
    red2.send("red after join");
    const m = await blue.next(isMessage("red after join"));
    assert.equal(m.room, "red");
    blue.sendJson({ type: "leave", room: "red" });
    await blue.next("left");
    red2.send("red after leave");
    await red1.next(isMessage("red after leave"));
    const text = marker();
    blue.send(text);
    await blue.next(isMessage(text));
    assert.ok(!blue.frames.some((f) => f.message === "red after leave"));
  });

  await t.step("an invalid room in the path is refused with 1008", async () => {
    await using bad = await TestClient.connect(s.url(`/ws/rooms/${"r".repeat(40)}`));
    assert.equal((await bad.waitClosed()).code, 1008);
  });
});

Deno.test("?since= recovers exactly the missed messages", async () => {
  await using s = await startServer();
  await using alice = await TestClient.connect(s.url("/ws/chat/alice"));
  await alice.next("welcome");
  alice.send("one");
  const first = await alice.next(isMessage("one"));
  alice.send("two");
  alice.send("three");
  await alice.next(isMessage("three"));
  await using bob = await TestClient.connect(s.url(`/ws/chat/bob?since=${first.id}`));
  const welcome = await bob.next("welcome");
  assert.equal(welcome.recovered, true);
  const history = welcome.history as Frame[];
  assert.deepEqual(history.filter((f) => f.type === "message").map((f) => f.message), [
    "two",
    "three",
  ]);
  const res = await fetch(s.httpUrl("/ws/chat/eve?since=abc"), {
    headers: { upgrade: "websocket", connection: "Upgrade" },
  });
  await res.body?.cancel();
  assert.equal(res.status, 400);
});

Deno.test("bad input gets an error frame and the connection stays usable", async (t) => {
  await using s = await startServer({ MAX_MESSAGE_BYTES: "1024" });
  await using c = await TestClient.connect(s.url("/ws/chat/tester"));
  await c.next("welcome");
  const cases: [string, string | Uint8Array<ArrayBuffer>, string][] = [
    ["malformed JSON", '{"type":"message"', "bad_json"],
    ["wrong field type", '{"type":"message","message":["x"]}', "bad_message"],
    ["unknown type", '{"type":"teleport"}', "unknown_type"],
    ["empty message", '{"type":"message","message":""}', "empty_message"],
    ["binary frame", new Uint8Array([0xde, 0xad]), "binary_not_supported"],
    [
      "private to an unknown user",
      '{"type":"private","to":"ghost","message":"boo"}',
      "user_not_found",
    ],
  ];
  for (const [name, frame, code] of cases) {
    await t.step(name, async () => {
      c.send(frame);
      const error = await c.next("error");
      assert.equal(error.code, code);
      assert.equal(typeof error.message, "string");
    });
  }
  await t.step("the socket still works", async () => {
    c.send("after all that");
    await c.next(isMessage("after all that"));
  });
  await t.step("a frame over MAX_MESSAGE_BYTES closes with 1009", async () => {
    c.send("x".repeat(2000));
    const closed = await c.waitClosed();
    assert.equal(closed.code, 1009);
    assert.equal(closed.reason, "Message too big");
  });
});

Deno.test("a full server closes new sockets with 1008 Server is full", async () => {
  await using s = await startServer({ MAX_CONNECTIONS: "1" });
  await using a = await TestClient.connect(s.url("/ws/chat/a"));
  await a.next("welcome");
  await using b = await TestClient.connect(s.url("/ws/chat/b"));
  const closed = await b.waitClosed();
  assert.equal(closed.code, 1008);
  assert.equal(closed.reason, "Server is full");
});

Deno.test("a plain GET to a WebSocket route is 400", async (t) => {
  await using s = await startServer();
  for (
    const path of ["/ws", "/ws/chat", "/ws/chat/alice", "/ws/chat/alice/heartbeat", "/ws/rooms/red"]
  ) {
    await t.step(path, async () => {
      const res = await fetch(s.httpUrl(path));
      assert.equal(res.status, 400);
      assert.equal(await res.text(), "Expected a WebSocket upgrade request");
    });
  }
});

/** Sends a handshake with an Origin over fetch and returns the status. */
async function handshakeStatus(url: string, origin: string): Promise<number> {
  const res = await fetch(url, {
    headers: {
      upgrade: "websocket",
      connection: "Upgrade",
      origin,
      "sec-websocket-version": "13",
      "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
    },
  });
  await res.body?.cancel();
  return res.status;
}

Deno.test("the Origin of a handshake is checked", async (t) => {
  await t.step("a foreign origin is refused with 403 by default", async () => {
    await using s = await startServer();
    assert.equal(await handshakeStatus(s.httpUrl("/ws/chat"), "http://evil.example"), 403);
    assert.equal(await handshakeStatus(s.httpUrl("/ws"), "null"), 403);
    // Deno's client reports a refused handshake as a failed connection.
    await assert.rejects(
      TestClient.connect(s.url("/ws/chat"), { headers: { origin: "http://evil.example" } }),
      /Handshake failed/,
    );
  });
  await t.step("the same host is allowed without configuration", async () => {
    await using s = await startServer();
    await using c = await TestClient.connect(s.url("/ws/chat"), {
      headers: { origin: s.httpUrl("") },
    });
    await c.next("welcome");
  });
  await t.step("ALLOWED_ORIGINS lists the origins that may connect", async () => {
    await using s = await startServer({ ALLOWED_ORIGINS: "https://good.example" });
    await using c = await TestClient.connect(s.url("/ws/chat"), {
      headers: { origin: "https://good.example" },
    });
    await c.next("welcome");
    assert.equal(await handshakeStatus(s.httpUrl("/ws/chat"), "https://bad.example"), 403);
  });
  await t.step("* allows any origin", async () => {
    await using s = await startServer({ ALLOWED_ORIGINS: "*" });
    await using c = await TestClient.connect(s.url("/ws"), {
      headers: { origin: "https://any.example" },
    });
    c.send("hi");
    await c.nextText((text) => text === "Echo: hi");
  });
});

Deno.test("/healthz reports status, connections, rooms and uptime", async () => {
  await using s = await startServer();
  await using a = await TestClient.connect(s.url("/ws/chat/a"));
  await a.next("welcome");
  await using b = await TestClient.connect(s.url("/ws/rooms/other"));
  await b.next("welcome");
  const res = await fetch(s.httpUrl("/healthz"));
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
  const body = await res.json();
  assert.equal(body.status, "ok");
  assert.equal(body.connections, 2);
  assert.equal(body.rooms, 2);
  assert.equal(typeof body.uptime_s, "number");
});

Deno.test("/metrics renders Prometheus text", async () => {
  await using s = await startServer();
  await using a = await TestClient.connect(s.url("/ws/chat/a"));
  await a.next("welcome");
  const res = await fetch(s.httpUrl("/metrics"));
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^text\/plain/);
  const body = await res.text();
  assert.match(body, /^chat_connections 1$/m);
  assert.match(body, /^# TYPE chat_connections_total counter$/m);
});

Deno.test("shutdown closes open sockets with 1001", async () => {
  const s = await startServer();
  await using c = await TestClient.connect(s.url("/ws/chat/a"));
  await c.next("welcome");
  await s[Symbol.asyncDispose]();
  const closed = await c.waitClosed();
  assert.equal(closed.code, 1001);
  assert.equal(closed.reason, "Server shutting down");
});

Deno.test("preferVectoredWrites turns on Deno's writev unless the environment decides", async (t) => {
  const original = Deno.env.get("DENO_USE_WRITEV");
  try {
    await t.step("unset becomes 1", () => {
      Deno.env.delete("DENO_USE_WRITEV");
      preferVectoredWrites();
      assert.equal(Deno.env.get("DENO_USE_WRITEV"), "1");
    });
    await t.step("an explicit value stays, even empty (off)", () => {
      Deno.env.set("DENO_USE_WRITEV", "");
      preferVectoredWrites();
      assert.equal(Deno.env.get("DENO_USE_WRITEV"), "");
    });
  } finally {
    if (original === undefined) Deno.env.delete("DENO_USE_WRITEV");
    else Deno.env.set("DENO_USE_WRITEV", original);
  }
});
