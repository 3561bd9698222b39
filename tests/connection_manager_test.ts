import assert from "node:assert/strict";
import {
  type Connection,
  ConnectionManager,
  type ConnectionManagerOptions,
  type ConnectOptions,
} from "../chat/connection_manager.ts";
import type {
  Delivery,
  Engine,
  EngineStats,
  HistoryPage,
  HistoryQuery,
  Presence,
  PublishOptions,
  StreamPosition,
} from "../chat/engines/engine.ts";
import { MemoryEngine } from "../chat/engines/memory.ts";
import { FakeClock, FakeScheduler, FakeSocket, type Frame, settle } from "./helpers/fakes.ts";

interface Client {
  socket: FakeSocket;
  conn: Connection;
  /** Sends a JSON frame. */
  send(value: unknown): void;
}

/**
 * A manager on a fake clock and scheduler, disposed with `await using`.
 * Join and leave notices go at once (`presenceWindowMs: 0`) unless a test
 * sets the window: presence_window_test covers coalescing.
 */
function harness(options: ConnectionManagerOptions = {}) {
  const clock = new FakeClock();
  const scheduler = new FakeScheduler(clock);
  const manager = new ConnectionManager({ clock, scheduler, presenceWindowMs: 0, ...options });
  const open = async (connect: ConnectOptions = {}): Promise<Client> => {
    const socket = new FakeSocket();
    const conn = manager.connect(socket, connect);
    await settle();
    return { socket, conn, send: (value) => conn.receive(JSON.stringify(value)) };
  };
  /** Runs the deferred closes (the manager closes one scheduler tick later). */
  const flushCloses = () => scheduler.advance(0);
  return {
    clock,
    scheduler,
    manager,
    open,
    flushCloses,
    [Symbol.asyncDispose]: () => manager[Symbol.asyncDispose](),
  };
}

/** Connects without letting the history read resolve. */
function connectNow(h: ReturnType<typeof harness>, username: string, since?: number): Client {
  const socket = new FakeSocket();
  const conn = h.manager.connect(socket, since === undefined ? { username } : { username, since });
  return { socket, conn, send: (value) => conn.receive(JSON.stringify(value)) };
}

function messages(socket: FakeSocket): Frame[] {
  return socket.framesOf("message");
}

function texts(socket: FakeSocket, type = "message"): unknown[] {
  return socket.framesOf(type).map((f) => f.message);
}

function lastError(socket: FakeSocket): Frame | undefined {
  return socket.framesOf("error").at(-1);
}

Deno.test("welcome is the first frame and describes the connection", async () => {
  await using h = harness({ heartbeatIntervalMs: 1000, heartbeatTimeoutMs: 3000 });
  const alice = await h.open({ username: "  alice ", room: "dev" });
  const [welcome] = alice.socket.frames();
  assert.equal(welcome?.type, "welcome");
  assert.equal(welcome.id, alice.conn.id);
  assert.equal(welcome.username, "alice");
  assert.equal(welcome.room, "dev");
  assert.deepEqual(welcome.users, ["alice"]);
  assert.equal(welcome.heartbeat, null);
  assert.equal(welcome.server_time, new Date(h.clock.now()).toISOString());
  assert.equal(welcome.recovered, true);
  assert.deepEqual(welcome.limits, { max_message_bytes: 16_384, rate_per_s: 10, burst: 20 });
  const beat = await h.open({ username: "bob", heartbeat: true });
  assert.deepEqual(beat.socket.frames()[0]?.heartbeat, { interval_ms: 1000, timeout_ms: 3000 });
});

Deno.test("a broadcast reaches every member of the room including the sender", async () => {
  await using h = harness();
  const alice = await h.open({ username: "alice" });
  const bob = await h.open({ username: "bob" });
  alice.send({
    type: "message",
    message: "hi all",
    username: "mallory",
    sender: "mallory",
    id: 999,
    timestamp: "1999-01-01T00:00:00.000Z",
  });
  for (const socket of [alice.socket, bob.socket]) {
    const [m, ...rest] = messages(socket);
    assert.equal(rest.length, 0);
    assert.equal(m?.message, "hi all");
    assert.equal(m.username, "alice");
    assert.equal(m.sender, "alice");
    assert.equal(m.room, "lobby");
    assert.equal(typeof m.id, "number");
    assert.notEqual(m.id, 999);
    assert.equal(m.timestamp, new Date(h.clock.now()).toISOString());
  }
});

Deno.test("plain text that is not JSON is a message to the user's room", async () => {
  await using h = harness();
  const alice = await h.open({ username: "alice" });
  const bob = await h.open({ username: "bob" });
  alice.conn.receive("hello there");
  assert.deepEqual(texts(bob.socket), ["hello there"]);
  assert.deepEqual(texts(alice.socket), ["hello there"]);
});

Deno.test("message ids increase within a room", async () => {
  await using h = harness();
  const alice = await h.open({ username: "alice" });
  for (const text of ["one", "two", "three"]) alice.conn.receive(text);
  const ids = messages(alice.socket).map((m) => m.id as number);
  assert.equal(ids.length, 3);
  assert.ok(ids[0]! < ids[1]! && ids[1]! < ids[2]!, `ids: ${ids}`);
});

Deno.test("join and leave notices go to the room with the member count", async () => {
  await using h = harness();
  const alice = await h.open({ username: "alice" });
  const bob = await h.open({ username: "bob" });
  const own = bob.socket.framesOf("system");
  assert.deepEqual(own.map((f) => [f.event, f.user, f.id]), [["join", "bob", undefined]]);
  assert.deepEqual(bob.socket.framesOf("welcome")[0]?.history, [], "notices are not stored");
  const joined = alice.socket.framesOf("system").at(-1);
  assert.equal(joined?.event, "join");
  assert.equal(joined.user, "bob");
  assert.equal(joined.id, undefined, "a join notice is live only");
  assert.equal(joined.sender, "System");
  assert.equal(joined.username, "System");
  assert.equal(joined.connected_count, 2);
  assert.match(String(joined.message), /bob/);
  bob.conn.closed(1000);
  const left = alice.socket.framesOf("system").at(-1);
  assert.equal(left?.event, "leave");
  assert.equal(left.user, "bob");
  assert.equal(left.connected_count, 1);
  assert.equal(left.id, undefined, "a leave notice is live only");
  assert.deepEqual(h.manager.users("lobby"), ["alice"]);
});

Deno.test("messages never cross rooms", async () => {
  await using h = harness();
  const a = await h.open({ username: "alice", room: "red" });
  const b = await h.open({ username: "bob", room: "blue" });
  a.conn.receive("in red");
  b.conn.receive("in blue");
  assert.deepEqual(texts(a.socket), ["in red"]);
  assert.deepEqual(texts(b.socket), ["in blue"]);
  assert.ok(b.socket.frames().every((f) => f.room === undefined || f.room === "blue"));
  assert.deepEqual(h.manager.users("red"), ["alice"]);
  assert.deepEqual(h.manager.users("blue"), ["bob"]);
});

Deno.test("in-band join and leave let one socket be in several rooms", async (t) => {
  await using h = harness();
  const alice = await h.open({ username: "alice" });
  const bob = await h.open({ username: "bob", room: "dev" });
  await t.step("join answers joined with users and history", async () => {
    bob.conn.receive("before alice");
    alice.send({ type: "join", room: "dev" });
    await settle();
    const joined = alice.socket.framesOf("joined").at(-1);
    assert.equal(joined?.room, "dev");
    assert.deepEqual(joined.users, ["bob", "alice"]);
    assert.deepEqual(
      (joined.history as Frame[]).filter((f) => f.type === "message").map((f) => f.message),
      ["before alice"],
    );
    assert.equal(bob.socket.framesOf("system").at(-1)?.user, "alice");
  });
  await t.step("a message addresses a room with room; the default is the first room", () => {
    alice.send({ type: "message", message: "to dev", room: "dev" });
    alice.send({ type: "message", message: "to lobby" });
    assert.deepEqual(texts(bob.socket), ["before alice", "to dev"]);
    assert.deepEqual(
      messages(alice.socket).map((m) => [m.room, m.message]),
      [["dev", "to dev"], ["lobby", "to lobby"]],
    );
  });
  await t.step("a message to a room not joined is refused", () => {
    alice.send({ type: "message", message: "x", room: "secret" });
    assert.equal(lastError(alice.socket)?.code, "not_in_room");
  });
  await t.step("an invalid room name is refused", () => {
    alice.send({ type: "join", room: "a/b" });
    assert.equal(lastError(alice.socket)?.code, "invalid_room");
  });
  await t.step("leave answers left, notifies and stops delivery", () => {
    alice.send({ type: "leave", room: "dev" });
    assert.deepEqual(alice.socket.framesOf("left").at(-1), {
      type: "left",
      room: "dev",
      sender: "System",
      message: "You left dev.",
    });
    const notice = bob.socket.framesOf("system").at(-1);
    assert.equal(notice?.event, "leave");
    assert.equal(notice.user, "alice");
    const before = messages(alice.socket).length;
    bob.conn.receive("after alice left");
    assert.equal(messages(alice.socket).length, before);
    alice.send({ type: "leave", room: "dev" });
    assert.equal(lastError(alice.socket)?.code, "not_in_room");
  });
});

Deno.test("users lists the online users of a room", async () => {
  await using h = harness();
  const alice = await h.open({ username: "alice" });
  await h.open({ username: "bob" });
  await h.open({ username: "carol", room: "other" });
  alice.send({ type: "users" });
  assert.deepEqual(alice.socket.framesOf("users").at(-1), {
    type: "users",
    room: "lobby",
    users: ["alice", "bob"],
    connected_count: 2,
    offset: 0,
    more: false,
    sender: "System",
    message: "Online in lobby (2): alice, bob.",
  });
  alice.send({ type: "users", room: "other" });
  assert.equal(lastError(alice.socket)?.code, "not_in_room");
});

Deno.test("a private message goes to its target and is echoed to the sender only", async (t) => {
  await using h = harness();
  const alice = await h.open({ username: "alice" });
  const bob = await h.open({ username: "Bob" });
  const carol = await h.open({ username: "carol" });
  const variants: [string, unknown][] = [
    ["private frame", { type: "private", to: "Bob", message: "secret 1" }],
    ["message with target_user", { type: "message", target_user: "Bob", message: "secret 2" }],
    ["message with to, any case", { type: "message", to: " bob ", message: "secret 3" }],
  ];
  for (const [name, frame] of variants) {
    await t.step(name, async () => {
      const text = (frame as { message: string }).message;
      alice.send(frame);
      // Stored in the pair's history first, then sent on both users' channels.
      await settle();
      for (const socket of [alice.socket, bob.socket]) {
        const p = socket.framesOf("private").at(-1);
        assert.equal(p?.message, text);
        assert.equal(p.username, "alice");
        assert.equal(p.sender, "alice");
        assert.equal(p.to, "Bob");
        assert.equal(p.room, "lobby");
        assert.equal(typeof p.id, "number");
      }
      assert.equal(alice.socket.framesOf("private").length, bob.socket.framesOf("private").length);
      assert.equal(carol.socket.framesOf("private").length, 0);
      assert.ok(!messages(carol.socket).some((m) => m.message === text));
    });
  }
});

Deno.test("a private message to a user who is not online is an error", async () => {
  await using h = harness();
  const alice = await h.open({ username: "alice" });
  const bob = await h.open({ username: "bob" });
  alice.send({ type: "private", to: "nobody", message: "hello?" });
  assert.equal(lastError(alice.socket)?.code, "user_not_found");
  bob.conn.closed(1000);
  alice.send({ type: "message", target_user: "bob", message: "still there?" });
  assert.equal(alice.socket.framesOf("error").length, 2);
  assert.equal(lastError(alice.socket)?.code, "user_not_found");
  assert.equal(alice.socket.framesOf("private").length, 0);
  assert.equal(alice.socket.closedWith, undefined);
});

Deno.test("rename announces the new name and keeps names unique", async (t) => {
  await using h = harness();
  const alice = await h.open({ username: "alice" });
  const bob = await h.open({ username: "bob" });
  await t.step("a rename is announced to the room", () => {
    alice.send({ type: "rename", name: " Alicia " });
    for (const socket of [alice.socket, bob.socket]) {
      const notice = socket.framesOf("system").at(-1);
      assert.equal(notice?.event, "rename");
      assert.equal(notice.old_name, "alice");
      assert.equal(notice.user, "Alicia");
      assert.match(String(notice.message), /alice.*Alicia/);
    }
    assert.deepEqual(h.manager.users("lobby"), ["Alicia", "bob"]);
    alice.conn.receive("signed");
    assert.equal(messages(bob.socket).at(-1)?.sender, "Alicia");
  });
  await t.step("the new name receives private messages, the old one is gone", async () => {
    bob.send({ type: "private", to: "alicia", message: "new you" });
    await settle();
    assert.equal(alice.socket.framesOf("private").at(-1)?.message, "new you");
    bob.send({ type: "private", to: "alice", message: "old you" });
    assert.equal(lastError(bob.socket)?.code, "user_not_found");
  });
  await t.step("a name someone has is refused, in any case", () => {
    for (const name of ["bob", "BOB", " Bob "]) {
      const before = alice.socket.framesOf("error").length;
      alice.send({ type: "rename", name });
      assert.equal(alice.socket.framesOf("error").length, before + 1);
      assert.equal(lastError(alice.socket)?.code, "name_taken");
    }
    assert.deepEqual(h.manager.users("lobby"), ["Alicia", "bob"]);
  });
  await t.step("invalid and reserved names are refused", () => {
    for (const name of ["", "a/b", "x".repeat(33), "System", "system"]) {
      alice.send({ type: "rename", name });
      assert.equal(lastError(alice.socket)?.code, "invalid_name", name);
    }
  });
  await t.step("a change of case of one's own name is allowed", () => {
    alice.send({ type: "rename", name: "ALICIA" });
    assert.deepEqual(h.manager.users("lobby"), ["ALICIA", "bob"]);
  });
  await t.step("a freed name can be taken", () => {
    bob.send({ type: "rename", name: "alice" });
    assert.deepEqual(h.manager.users("lobby"), ["ALICIA", "alice"]);
  });
});

Deno.test("a rename into a banned name is refused with banned", async (t) => {
  await using h = harness();
  const bob = await h.open({ username: "bob" });
  h.manager.ban("mallory", { untilMs: h.clock.now() + 60_000 });
  for (const name of ["mallory", "MALLORY", "\uFF4D\uFF41\uFF4C\uFF4C\uFF4F\uFF52\uFF59"]) {
    await t.step(JSON.stringify(name), async () => {
      bob.send({ type: "rename", name });
      await settle();
      assert.equal(lastError(bob.socket)?.code, "banned");
      assert.match(String(lastError(bob.socket)?.message), /: mallory$/i);
      assert.deepEqual(h.manager.users("lobby"), ["bob"]);
    });
  }
  await t.step("allowed again once the ban expires", async () => {
    h.clock.time += 60_000;
    bob.send({ type: "rename", name: "mallory" });
    await settle();
    assert.deepEqual(h.manager.users("lobby"), ["mallory"]);
  });
});

Deno.test("a name that looks like an online name is that name", async (t) => {
  await using h = harness();
  const alice = await h.open({ username: "Alice" });
  await t.step("mathematical bold Alice is refused with 4009", async () => {
    const bold = await h.open({ username: "\u{1D400}\u{1D425}\u{1D422}\u{1D41C}\u{1D41E}" });
    h.flushCloses();
    assert.deepEqual(bold.socket.closedWith, { code: 4009, reason: "Username already in use" });
  });
  await t.step("fullwidth ALICE is refused with 4009", async () => {
    const wide = await h.open({ username: "\uFF21\uFF2C\uFF29\uFF23\uFF25" });
    h.flushCloses();
    assert.equal(wide.socket.closedWith?.code, 4009);
  });
  await t.step("Alice with a Cyrillic А is refused with 1008", async () => {
    const mixed = await h.open({ username: "\u0410lice" });
    h.flushCloses();
    assert.equal(mixed.socket.closedWith?.code, 1008);
  });
  await t.step("a rename into a lookalike is name_taken or invalid_name", async () => {
    const bob = await h.open({ username: "bob" });
    bob.send({ type: "rename", name: "\uFF41\uFF4C\uFF49\uFF43\uFF45" });
    assert.equal(lastError(bob.socket)?.code, "name_taken");
    bob.send({ type: "rename", name: "Syst\u0435m" });
    assert.equal(lastError(bob.socket)?.code, "invalid_name");
    assert.deepEqual(h.manager.users("lobby"), ["Alice", "bob"]);
  });
  assert.equal(alice.socket.closedWith, undefined);
});

Deno.test("a private message's to is normalised like a name", async (t) => {
  await using h = harness();
  const jose = await h.open({ username: "José" });
  const alice = await h.open({ username: "alice" });
  const spellings: [string, string][] = [
    ["decomposed", "Jose\u0301"],
    ["fullwidth capitals", "\uFF2A\uFF2F\uFF33\uFF25\u0301"],
    ["padded", "  jos\u00E9 "],
  ];
  for (const [what, to] of spellings) {
    await t.step(what, async () => {
      alice.send({ type: "private", to, message: what });
      await settle();
      const got = jose.socket.framesOf("private").at(-1);
      assert.equal(got?.message, what);
      assert.equal(got.to, "José");
    });
  }
});

Deno.test("a username already online is refused with 4009", async (t) => {
  await using h = harness();
  await h.open({ username: "alice" });
  for (const name of ["alice", "ALICE", " Alice "]) {
    await t.step(name, async () => {
      const dup = await h.open({ username: name });
      assert.equal(dup.socket.closedWith, undefined, "the close waits one tick");
      h.flushCloses();
      assert.deepEqual(dup.socket.closedWith, { code: 4009, reason: "Username already in use" });
      assert.equal(dup.socket.framesOf("welcome").length, 0);
    });
  }
  assert.equal(h.manager.connectionCount, 1);
});

/** A memory engine with a presence whose other processes hold the names in `elsewhere`. */
class ElsewhereEngine extends MemoryEngine {
  readonly elsewhere = new Set<string>();
  lookups = 0;
  readonly presence: Presence = {
    join: () => {},
    leave: () => {},
    connect: () => {},
    disconnect: () => {},
    users: () => Promise.resolve([...this.elsewhere]),
    lookup: (name) => {
      this.lookups++;
      const held = this.elsewhere.has(name.toLowerCase());
      return Promise.resolve(held ? { username: name, userId: null } : undefined);
    },
  };
}

Deno.test("a name held on another process is looked up again before 4009", async (t) => {
  await t.step("admitted once the other process lets it go", async () => {
    const engine = new ElsewhereEngine();
    await using h = harness({ engine });
    engine.elsewhere.add("bob");
    const bob = await h.open({ username: "bob" });
    bob.send({ type: "message", message: "said while waiting" });
    h.scheduler.advance(50);
    await settle();
    assert.equal(bob.socket.framesOf("welcome").length, 0, "still held");
    engine.elsewhere.delete("bob");
    h.scheduler.advance(50);
    await settle();
    h.flushCloses();
    assert.equal(bob.socket.closedWith, undefined);
    assert.equal(bob.socket.framesOf("welcome")[0]?.username, "bob");
    assert.deepEqual(texts(bob.socket), ["said while waiting"]);
  });

  await t.step("refused with 4009 when it stays held, after four more lookups", async () => {
    const engine = new ElsewhereEngine();
    await using h = harness({ engine });
    engine.elsewhere.add("carol");
    const carol = await h.open({ username: "carol" });
    for (let i = 0; i < 10; i++) {
      h.scheduler.advance(50);
      await settle();
    }
    h.flushCloses();
    assert.deepEqual(carol.socket.closedWith, { code: 4009, reason: "Username already in use" });
    assert.equal(engine.lookups, 5);
    assert.equal(h.scheduler.pending, 0);
  });

  await t.step("a name held on this process is refused at once", async () => {
    const engine = new ElsewhereEngine();
    await using h = harness({ engine });
    await h.open({ username: "dave" });
    const twin = await h.open({ username: "dave" });
    h.flushCloses();
    assert.equal(twin.socket.closedWith?.code, 4009);
    assert.equal(engine.lookups, 1, "the twin is refused before any lookup");
    assert.equal(h.scheduler.pending, 0);
  });

  await t.step("closing or shutting down while waiting leaves no timer", async () => {
    const engine = new ElsewhereEngine();
    const h = harness({ engine });
    engine.elsewhere.add("erin").add("frank");
    const erin = await h.open({ username: "erin" });
    const frank = await h.open({ username: "frank" });
    erin.conn.closed(1000);
    assert.equal(h.scheduler.pending, 1, "frank's recheck only");
    await h.manager[Symbol.asyncDispose]();
    assert.deepEqual(frank.socket.closedWith, { code: 1001, reason: "Server shutting down" });
    assert.equal(h.scheduler.pending, 0);
    assert.equal(engine.lookups, 2);
  });
});

Deno.test("an invalid username is refused with 1008 and a reason", async (t) => {
  await using h = harness();
  for (const name of ["", "   ", "a/b", "<b>", "x".repeat(33), "System"]) {
    await t.step(JSON.stringify(name), async () => {
      const c = await h.open({ username: name });
      h.flushCloses();
      assert.equal(c.socket.closedWith?.code, 1008);
      assert.match(String(c.socket.closedWith?.reason), /^Invalid username/);
      assert.ok(new TextEncoder().encode(c.socket.closedWith?.reason).length <= 123);
    });
  }
  assert.equal(h.manager.connectionCount, 0);
});

Deno.test("anonymous users are named User N, unique while online", async () => {
  await using h = harness();
  const first = await h.open();
  const second = await h.open();
  assert.equal(first.socket.frames()[0]?.username, "User 1");
  assert.equal(second.socket.frames()[0]?.username, "User 2");
  await h.open({ username: "User 3" });
  const fourth = await h.open();
  assert.equal(fourth.socket.frames()[0]?.username, "User 4");
  // An anonymous user may rename; the number it had is not reused while taken.
  second.send({ type: "rename", name: "User 5" });
  const fifth = await h.open();
  assert.equal(fifth.socket.frames()[0]?.username, "User 6");
  assert.equal(new Set(h.manager.users("lobby")).size, 5);
});

Deno.test("the heartbeat sends pings every interval from one sweep", async () => {
  await using h = harness({ heartbeatIntervalMs: 1000, heartbeatTimeoutMs: 10_000 });
  const sockets = await Promise.all(
    [1, 2, 3].map((n) => h.open({ username: `u${n}`, heartbeat: true })),
  );
  const quiet = await h.open({ username: "no-heartbeat" });
  assert.equal(h.scheduler.intervals, 1, "one scheduler for the whole manager");
  h.scheduler.advance(999);
  for (const s of sockets) assert.equal(s.socket.framesOf("ping").length, 0);
  h.scheduler.advance(1);
  for (const s of sockets) assert.equal(s.socket.framesOf("ping").length, 1);
  h.scheduler.advance(4000);
  for (const s of sockets) assert.equal(s.socket.framesOf("ping").length, 5);
  const ping = sockets[0]!.socket.framesOf("ping")[0];
  assert.equal(typeof ping?.server_time, "string");
  assert.equal(quiet.socket.framesOf("ping").length, 0);
  assert.equal(quiet.socket.closedWith, undefined);
});

Deno.test("heartbeat is answered with heartbeat_ack", async () => {
  await using h = harness();
  const alice = await h.open({ username: "alice", heartbeat: true });
  alice.send({ type: "heartbeat" });
  const ack = alice.socket.framesOf("heartbeat_ack");
  assert.equal(ack.length, 1);
  assert.equal(ack[0]?.server_time, new Date(h.clock.now()).toISOString());
});

Deno.test("a silent heartbeat socket is closed with 4000 after the timeout", async () => {
  await using h = harness({ heartbeatIntervalMs: 1000, heartbeatTimeoutMs: 3000 });
  const silent = await h.open({ username: "silent", heartbeat: true });
  const other = await h.open({ username: "other" });
  h.scheduler.advance(2900);
  assert.equal(silent.socket.closedWith, undefined);
  h.scheduler.advance(200);
  assert.deepEqual(silent.socket.closedWith, { code: 4000, reason: "Heartbeat timeout" });
  assert.equal(h.manager.connectionCount, 1);
  assert.equal(other.socket.framesOf("system").at(-1)?.event, "leave");
  assert.equal(other.socket.closedWith, undefined, "sockets without heartbeat are not timed");
});

Deno.test("any frame from the client resets the heartbeat timeout", async (t) => {
  for (const frame of ['{"type":"pong"}', '{"type":"heartbeat"}', "chatting", "{bad json"]) {
    await t.step(frame, async () => {
      await using h = harness({ heartbeatIntervalMs: 1000, heartbeatTimeoutMs: 3000 });
      const c = await h.open({ username: "alice", heartbeat: true });
      h.scheduler.advance(2500);
      c.conn.receive(frame);
      h.scheduler.advance(2500);
      assert.equal(c.socket.closedWith, undefined, "5000 ms after connect, 2500 ms after activity");
      h.scheduler.advance(600);
      assert.equal(c.socket.closeCode(), 4000);
    });
  }
});

Deno.test("a slow consumer is closed with 4008 and the others still receive", async () => {
  await using h = harness({ maxBufferedBytes: 1024 });
  const alice = await h.open({ username: "alice" });
  const slow = await h.open({ username: "slow" });
  const carol = await h.open({ username: "carol" });
  slow.socket.stall();
  const said = Array.from({ length: 10 }, (_, i) => `message ${i}`);
  for (const text of said) alice.conn.receive(text);
  h.flushCloses();
  assert.deepEqual(slow.socket.closedWith, { code: 4008, reason: "Slow consumer" });
  // Closed at the first frame that took its buffer past the limit, and sent nothing after it.
  const got = texts(slow.socket);
  assert.deepEqual(got, said.slice(0, got.length));
  assert.ok(got.length > 1 && got.length < said.length, `frames before the close: ${got.length}`);
  const last = new TextEncoder().encode(slow.socket.sent.at(-1)!).length;
  assert.ok(slow.socket.bufferedAmount > 1024, `buffered: ${slow.socket.bufferedAmount}`);
  assert.ok(slow.socket.bufferedAmount - last <= 1024, "not closed one frame late");
  for (const s of [alice.socket, carol.socket]) {
    assert.deepEqual(texts(s), said);
    assert.equal(s.framesOf("system").at(-1)?.event, "leave");
    // A delivery that causes a notice is finished first: the leave follows the
    // message that closed the slow consumer, and stored frames keep their id order.
    const room = s.frames().filter((f) => f.type === "message" || f.type === "system");
    const at = room.findIndex((f) => f.message === said[got.length - 1]);
    assert.equal(room[at + 1]?.event, "leave");
    const ids = room.filter((f) => f.id !== undefined).map((f) => f.id as number);
    assert.deepEqual(ids, [...ids].sort((x, y) => x - y), `ids out of order: ${ids}`);
  }
  assert.equal(h.manager.connectionCount, 2);
  assert.equal(h.manager.metrics.slowConsumerCloses, 1);
});

Deno.test("a buffer exactly at the limit is kept; one frame more closes it", async () => {
  // The size of one message frame, measured on a first manager with the same clock and ids.
  let frameBytes = 0;
  {
    await using h = harness();
    const alice = await h.open({ username: "alice" });
    alice.socket.stall();
    alice.conn.receive("fits");
    frameBytes = alice.socket.bufferedAmount;
  }
  await using h = harness({ maxBufferedBytes: 2 * frameBytes });
  const alice = await h.open({ username: "alice" });
  // Read by the peer, but counted in the manager's bound: it then reads the
  // buffer when it is exactly at the limit, and must keep the socket.
  alice.conn.receive("fits");
  alice.socket.stall();
  alice.conn.receive("fits");
  alice.conn.receive("fits");
  h.flushCloses();
  assert.equal(alice.socket.bufferedAmount, 2 * frameBytes);
  assert.equal(alice.socket.closedWith, undefined);
  alice.conn.receive("fits");
  h.flushCloses();
  assert.deepEqual(alice.socket.closedWith, { code: 4008, reason: "Slow consumer" });
});

Deno.test("connections past MAX_CONNECTIONS are closed with 1008 Server is full", async () => {
  await using h = harness({ maxConnections: 2 });
  const a = await h.open({ username: "a" });
  await h.open({ username: "b" });
  assert.equal(h.manager.full, true);
  const c = await h.open({ username: "c" });
  const echo = await h.open({ mode: "echo" });
  h.flushCloses();
  for (const refused of [c, echo]) {
    assert.deepEqual(refused.socket.closedWith, { code: 1008, reason: "Server is full" });
    assert.equal(refused.socket.sent.length, 0);
  }
  assert.equal(h.manager.connectionCount, 2);
  a.conn.closed(1000);
  const d = await h.open({ username: "d" });
  h.flushCloses();
  assert.equal(d.socket.closedWith, undefined);
  assert.equal(d.socket.frames()[0]?.type, "welcome");
});

Deno.test("a frame over MAX_MESSAGE_BYTES closes with 1009", async (t) => {
  await t.step("ASCII exactly at the limit passes", async () => {
    await using h = harness({ maxMessageBytes: 100 });
    const c = await h.open({ username: "alice" });
    c.conn.receive("x".repeat(100));
    h.flushCloses();
    assert.equal(c.socket.closedWith, undefined);
    assert.equal(messages(c.socket).length, 1);
  });
  for (
    const [name, frame] of [
      ["ASCII one byte over", "x".repeat(101)],
      ["multi-byte text over in bytes, not in characters", "é".repeat(51)],
      ["a binary frame over", new Uint8Array(101)],
    ] as const
  ) {
    await t.step(name, async () => {
      await using h = harness({ maxMessageBytes: 100 });
      const c = await h.open({ username: "alice" });
      const other = await h.open({ username: "bob" });
      c.conn.receive(frame);
      assert.equal(messages(other.socket).length, 0);
      h.flushCloses();
      assert.deepEqual(c.socket.closedWith, { code: 1009, reason: "Message too big" });
    });
  }
});

Deno.test("bad input gets an error frame and the socket stays open", async (t) => {
  await using h = harness();
  const c = await h.open({ username: "alice" });
  const cases: [string, string | Uint8Array, string][] = [
    ["malformed JSON", '{"type":"message",', "bad_json"],
    ["wrong type of field", '{"type":"message","message":42}', "bad_message"],
    ["no type and no message", '{"room":"lobby"}', "bad_message"],
    ["unknown type", '{"type":"nope"}', "unknown_type"],
    ["empty message", '{"type":"message","message":"   "}', "empty_message"],
    ["binary frame", new Uint8Array([1, 2, 3]), "binary_not_supported"],
  ];
  for (const [name, frame, code] of cases) {
    await t.step(name, () => {
      const before = c.socket.framesOf("error").length;
      c.conn.receive(frame);
      assert.equal(c.socket.framesOf("error").length, before + 1);
      const error = lastError(c.socket);
      assert.equal(error?.code, code);
      assert.equal(typeof error.message, "string");
    });
  }
  c.conn.receive(new ArrayBuffer(4));
  assert.equal(lastError(c.socket)?.code, "binary_not_supported");
  h.flushCloses();
  assert.equal(c.socket.closedWith, undefined);
  c.conn.receive("still works");
  assert.deepEqual(texts(c.socket), ["still works"]);
});

Deno.test("the echo route answers only its own client", async () => {
  await using h = harness();
  const echo = await h.open({ mode: "echo" });
  const chat = await h.open({ username: "alice" });
  assert.equal(echo.socket.sent.length, 0, "no welcome on echo");
  echo.conn.receive("ping me");
  assert.deepEqual(echo.socket.sent, ["Echo: ping me"]);
  assert.equal(messages(chat.socket).length, 0);
  echo.conn.receive('{"type":"message","message":"x"}');
  assert.equal(echo.socket.sent[1], 'Echo: {"type":"message","message":"x"}');
});

Deno.test("welcome carries recent history", async () => {
  await using h = harness({ historyOnJoin: 3 });
  const alice = await h.open({ username: "alice" });
  for (const text of ["m1", "m2", "m3", "m4"]) alice.conn.receive(text);
  const bob = await h.open({ username: "bob" });
  const welcome = bob.socket.frames()[0];
  assert.equal(welcome?.type, "welcome");
  // The last three messages: join notices are live only, never in history.
  const history = welcome.history as Frame[];
  assert.deepEqual(history.map((f) => f.message), ["m2", "m3", "m4"]);
  assert.equal(welcome.recovered, true);
  // Nothing in history is sent twice: after it only Bob's own join notice, live.
  const after = bob.socket.frames().slice(1);
  assert.deepEqual(after.map((f) => [f.event, f.user, f.id]), [["join", "bob", undefined]]);
});

/** A memory engine whose history answers wait for release(), to open a race window. */
class SlowHistoryEngine implements Engine {
  readonly name = "slow-history";
  readonly inner = new MemoryEngine();
  #held: (() => void)[] = [];
  get epoch(): string {
    return this.inner.epoch;
  }
  start(deliver: Delivery): Promise<void> {
    return this.inner.start(deliver);
  }
  publish(
    channel: string,
    payload: string,
    options?: PublishOptions,
  ): Promise<StreamPosition | undefined> {
    return this.inner.publish(channel, payload, options);
  }
  history(channel: string, query: HistoryQuery): Promise<HistoryPage> {
    // Read when released, so frames published meanwhile are in the page too.
    return new Promise((resolve) => {
      this.#held.push(() => resolve(this.inner.history(channel, query)));
    });
  }
  release(): void {
    for (const fn of this.#held.splice(0)) fn();
  }
  stats(): EngineStats {
    return this.inner.stats();
  }
  subscribe(channel: string): void {
    this.inner.subscribe(channel);
  }
  unsubscribe(channel: string): void {
    this.inner.unsubscribe(channel);
  }
  status(): "ok" {
    return "ok";
  }
  [Symbol.asyncDispose](): Promise<void> {
    this.release();
    return this.inner[Symbol.asyncDispose]();
  }
}

Deno.test("since recovers exactly the missed messages, without duplicates", async (t) => {
  await t.step("on connect", async () => {
    await using h = harness();
    const alice = await h.open({ username: "alice" });
    for (const text of ["m1", "m2", "m3"]) alice.conn.receive(text);
    const seen = messages(alice.socket)[0]!.id as number;
    const bob = await h.open({ username: "bob", since: seen });
    const welcome = bob.socket.frames()[0];
    assert.equal(welcome?.type, "welcome");
    assert.equal(welcome.recovered, true);
    const history = welcome.history as Frame[];
    assert.deepEqual(history.filter((f) => f.type === "message").map((f) => f.message), [
      "m2",
      "m3",
    ]);
    assert.ok(history.every((f) => (f.id as number) > seen));
  });

  await t.step("frames published while history loads are sent once, in order", async () => {
    const engine = new SlowHistoryEngine();
    await using h = harness({ engine });
    const alice = connectNow(h, "alice");
    engine.release();
    await settle();
    alice.conn.receive("m1");
    const seen = messages(alice.socket)[0]!.id as number;
    alice.conn.receive("m2");
    // No settle: the history read is still pending while m3 is published.
    const bob = connectNow(h, "bob", seen);
    alice.conn.receive("m3 during load");
    engine.release();
    await settle();
    alice.conn.receive("m4 live");
    const [welcome, ...rest] = bob.socket.frames();
    assert.equal(welcome?.type, "welcome");
    const got = [...(welcome.history as Frame[]), ...rest]
      .filter((f) => f.type === "message")
      .map((f) => f.message);
    assert.deepEqual(got, ["m2", "m3 during load", "m4 live"]);
    const ids = [...(welcome.history as Frame[]), ...rest].map((f) => f.id);
    assert.equal(new Set(ids).size, ids.length, `duplicate ids: ${ids}`);
  });

  await t.step("in-band resume replays what was missed in a joined room", async () => {
    await using h = harness();
    const alice = await h.open({ username: "alice" });
    const bob = await h.open({ username: "bob" });
    alice.conn.receive("r1");
    const seen = messages(bob.socket)[0]!.id as number;
    alice.conn.receive("r2");
    alice.conn.receive("r3");
    bob.socket.take();
    bob.send({ type: "resume", room: "lobby", since: seen });
    await settle();
    const frames = bob.socket.take();
    assert.equal(frames.length, 1);
    const joined = frames[0];
    assert.equal(joined?.type, "joined");
    assert.equal(joined.recovered, true);
    assert.deepEqual((joined.history as Frame[]).map((f) => f.message), ["r2", "r3"]);
    assert.equal(alice.socket.framesOf("system").filter((f) => f.user === "bob").length, 1);
  });

  await t.step("join with since into a new room", async () => {
    await using h = harness();
    const alice = await h.open({ username: "alice", room: "dev" });
    alice.conn.receive("d1");
    const seen = messages(alice.socket)[0]!.id as number;
    alice.conn.receive("d2");
    const bob = await h.open({ username: "bob" });
    bob.send({ type: "join", room: "dev", since: seen });
    await settle();
    const joined = bob.socket.framesOf("joined")[0];
    const history = (joined?.history ?? []) as Frame[];
    assert.deepEqual(history.filter((f) => f.type === "message").map((f) => f.message), ["d2"]);
  });

  await t.step("since older than the retained history is not recovered", async () => {
    await using h = harness({ historyLimit: 3, engine: new MemoryEngine({ historyLimit: 3 }) });
    const alice = await h.open({ username: "alice" });
    for (const text of ["o1", "o2", "o3", "o4", "o5"]) alice.conn.receive(text);
    const bob = await h.open({ username: "bob", since: 1 });
    const welcome = bob.socket.frames()[0];
    assert.equal(welcome?.recovered, false);
  });
});

Deno.test("closeAll closes every socket at once without notices", async () => {
  await using h = harness();
  const a = await h.open({ username: "a" });
  const b = await h.open({ username: "b", heartbeat: true });
  const e = await h.open({ mode: "echo" });
  const refused = await h.open({ username: "a" });
  const before = a.socket.sent.length;
  h.manager.closeAll(1001, "Server shutting down");
  for (const c of [a, b, e, refused]) {
    assert.equal(c.socket.closedWith?.code, c === refused ? 4009 : 1001);
  }
  assert.equal(a.socket.sent.length, before, "no leave notices on shutdown");
  assert.equal(h.manager.connectionCount, 0);
  assert.equal(h.manager.roomCount, 0);
  assert.equal(h.scheduler.pending - h.scheduler.intervals, 0, "no close left pending");
});

Deno.test("dispose closes sockets with 1001, stops the sweep and refuses newcomers", async () => {
  const clock = new FakeClock();
  const scheduler = new FakeScheduler(clock);
  const manager = new ConnectionManager({ clock, scheduler });
  const socket = new FakeSocket();
  manager.connect(socket, { username: "alice", heartbeat: true });
  await settle();
  assert.equal(scheduler.intervals, 1);
  await manager[Symbol.asyncDispose]();
  assert.deepEqual(socket.closedWith, { code: 1001, reason: "Server shutting down" });
  assert.equal(scheduler.intervals, 0);
  const late = new FakeSocket();
  manager.connect(late, { username: "bob" });
  scheduler.advance(0);
  assert.equal(late.closedWith?.code, 1001);
  assert.equal(manager.connectionCount, 0);
  await manager[Symbol.asyncDispose]();
});

Deno.test("a closed socket is removed from the registry and its name freed", async () => {
  await using h = harness();
  const a = await h.open({ username: "alice" });
  a.conn.closed(1006);
  assert.equal(h.manager.isOnline("alice"), false);
  assert.equal(h.manager.connectionCount, 0);
  const again = await h.open({ username: "alice" });
  h.flushCloses();
  assert.equal(again.socket.closedWith, undefined);
  a.conn.receive("from a dead socket");
  assert.equal(messages(again.socket).length, 0);
});

/** A memory engine whose publish can be made to fail. */
class FlakySyncEngine extends MemoryEngine {
  failing = false;
  override publish(
    channel: string,
    payload: string,
    options?: PublishOptions,
  ): Promise<StreamPosition | undefined> {
    if (this.failing) return Promise.reject(new Error("Store unavailable: test"));
    return super.publish(channel, payload, options);
  }
}

Deno.test("an engine's failure is an unavailable error and nothing is delivered", async () => {
  const engine = new FlakySyncEngine();
  await using h = harness({ engine });
  const alice = await h.open({ username: "alice" });
  const bob = await h.open({ username: "bob" });
  alice.send({ type: "message", message: "one" });
  engine.failing = true;
  alice.send({ type: "message", message: "lost" });
  engine.failing = false;
  alice.send({ type: "message", message: "two" });
  await settle();
  assert.equal(lastError(alice.socket)?.code, "unavailable");
  assert.deepEqual(texts(bob.socket), ["one", "two"]);
  const ids = messages(bob.socket).map((f) => f.id as number);
  assert.equal(ids[1], ids[0]! + 1, "a failed publish takes no id");
});

Deno.test("welcome history keeps message text that looks like JSON or a replacement pattern", async () => {
  await using h = harness();
  const alice = await h.open({ username: "alice" });
  const tricky = ['$& $1 $$ "history":[] ]}', '{"history":[]}', "line\nbreak \u2028 é 😀"];
  for (const text of tricky) alice.conn.receive(JSON.stringify({ type: "message", message: text }));
  const bob = await h.open({ username: "bob" });
  const welcome = bob.socket.framesOf("welcome")[0]!;
  const history = welcome.history as Frame[];
  assert.deepEqual(history.filter((f) => f.type === "message").map((f) => f.message), tricky);
  assert.deepEqual(welcome.users, ["alice", "bob"]);
  assert.equal(welcome.recovered, true);
  // An in-band join sends its history the same way.
  alice.send({ type: "join", room: "other" });
  await settle();
  alice.send({ type: "message", room: "other", message: tricky[0] });
  bob.send({ type: "join", room: "other" });
  await settle();
  const joined = bob.socket.framesOf("joined")[0]!;
  const said = (joined.history as Frame[]).filter((f) => f.type === "message");
  assert.deepEqual(said.map((f) => f.message), [tricky[0]]);
});

Deno.test("a batching connection gets the frames of one turn as one frame, a JSON object per line", async () => {
  await using h = harness();
  const batched = await h.open({ username: "batched", batch: true });
  const plain = await h.open({ username: "plain" });
  const alice = await h.open({ username: "alice" });
  batched.socket.sent.length = 0;
  plain.socket.sent.length = 0;
  for (const text of ["one", "two", "three"]) alice.conn.receive(text);
  assert.equal(plain.socket.sent.length, 3, "a plain connection is sent each frame at once");
  assert.equal(batched.socket.sent.length, 0, "the batch waits for the end of the turn");
  await settle();
  assert.equal(batched.socket.sent.length, 1);
  // The same frames, byte for byte, in the same order.
  assert.deepEqual(batched.socket.sent[0]!.split("\n"), plain.socket.sent);
  alice.conn.receive("four");
  await settle();
  assert.equal(batched.socket.sent.length, 2);
  assert.equal(batched.socket.sent[1], plain.socket.sent[3], "one frame alone has no newline");
  // Before: three welcomes and six join notices (each user's own and the later ones).
  assert.equal(h.manager.metrics.framesOut, plain.socket.sent.length * 3 + 3 + 6);
});

Deno.test("a batch goes out before the close that follows it", async (t) => {
  await t.step("closeAll in the same turn", async () => {
    await using h = harness();
    const batched = await h.open({ username: "batched", batch: true });
    const alice = await h.open({ username: "alice" });
    batched.socket.sent.length = 0;
    alice.conn.receive("last words");
    h.manager.closeAll(1001, "Server shutting down");
    assert.deepEqual(batched.socket.closedWith, { code: 1001, reason: "Server shutting down" });
    assert.deepEqual(texts(batched.socket), ["last words"]);
  });
  await t.step("a drop for flooding, its close deferred", async () => {
    await using h = harness({ rateLimitPerS: 1, rateLimitBurst: 2 });
    const batched = await h.open({ username: "batched", batch: true });
    batched.socket.sent.length = 0;
    for (let i = 0; i < 6; i++) batched.conn.receive(`flood ${i}`);
    // The close runs before any microtask: it must send the batch itself.
    h.flushCloses();
    assert.deepEqual(batched.socket.closedWith, { code: 1008, reason: "Rate limit exceeded" });
    const frames = batched.socket.sent.flatMap((text) => text.split("\n"))
      .map((line) => JSON.parse(line) as Frame);
    assert.deepEqual(
      frames.filter((f) => f.type === "message").map((f) => f.message),
      ["flood 0", "flood 1"],
    );
    assert.equal(frames.filter((f) => f.code === "rate_limited").length, 2);
  });
});

Deno.test("a batch past 64 KiB goes out as several frames, in order", async () => {
  await using h = harness({ rateLimitBurst: 100 });
  const batched = await h.open({ username: "batched", batch: true });
  const plain = await h.open({ username: "plain" });
  const alice = await h.open({ username: "alice" });
  batched.socket.sent.length = 0;
  plain.socket.sent.length = 0;
  const said = Array.from({ length: 20 }, (_, i) => `${i} ${"x".repeat(10_000)}`);
  for (const text of said) alice.conn.receive(text);
  await settle();
  assert.ok(batched.socket.sent.length >= 4, `frames: ${batched.socket.sent.length}`);
  assert.ok(batched.socket.sent.length < said.length, `frames: ${batched.socket.sent.length}`);
  for (const text of batched.socket.sent) {
    assert.ok(new TextEncoder().encode(text).length <= 65_536, `a frame of ${text.length}`);
  }
  assert.deepEqual(batched.socket.sent.flatMap((text) => text.split("\n")), plain.socket.sent);
});

Deno.test("a slow batching consumer is closed with 4008 and the others still receive", async () => {
  await using h = harness({ maxBufferedBytes: 1024 });
  const alice = await h.open({ username: "alice" });
  const slow = await h.open({ username: "slow", batch: true });
  slow.socket.stall();
  const said = Array.from({ length: 10 }, (_, i) => `message ${i}`);
  for (const text of said) alice.conn.receive(text);
  await settle();
  h.flushCloses();
  assert.deepEqual(slow.socket.closedWith, { code: 4008, reason: "Slow consumer" });
  assert.deepEqual(texts(alice.socket), said);
  assert.equal(alice.socket.framesOf("system").at(-1)?.event, "leave");
  assert.equal(h.manager.metrics.slowConsumerCloses, 1);
});

Deno.test("the echo route never batches", async () => {
  await using h = harness();
  const echo = await h.open({ mode: "echo", batch: true });
  echo.conn.receive("a\nb");
  echo.conn.receive("c");
  assert.deepEqual(echo.socket.sent, ["Echo: a\nb", "Echo: c"]);
});

/** A memory engine whose presence answers `users` only when the test opens its gates. */
class GatedPresenceEngine extends MemoryEngine {
  readonly gates: (() => void)[] = [];
  readonly presence: Presence = {
    join: () => {},
    leave: () => {},
    connect: () => {},
    disconnect: () => {},
    users: () => new Promise((resolve) => this.gates.push(() => resolve([]))),
    lookup: () => Promise.resolve(undefined),
  };

  /** Opens every gate waiting now, then lets the promises settle. */
  async openGates(): Promise<void> {
    for (const open of this.gates.splice(0)) open();
    await settle();
  }
}

Deno.test("messages keep their order behind notices still counting the room's users", async () => {
  const engine = new GatedPresenceEngine();
  await using h = harness({ engine });
  const alice = await h.open({ username: "alice" });
  for (let i = 0; i < 5 && alice.socket.framesOf("welcome").length === 0; i++) {
    await engine.openGates();
  }
  assert.equal(alice.socket.framesOf("welcome").length, 1);
  await engine.openGates();
  h.manager.announce("lobby", "announce", "J1");
  alice.send({ type: "message", message: "M1" });
  h.manager.announce("lobby", "announce", "J2");
  alice.send({ type: "message", message: "M2" });
  for (let i = 0; i < 5; i++) await engine.openGates();
  const page = await engine.history("lobby", { limit: 50 });
  const said = page.publications.map((p) => JSON.parse(p.payload).message)
    .filter((m: string) => /^[JM]\d$/.test(m));
  assert.deepEqual(said, ["J1", "M1", "J2", "M2"]);
});

/**
 * A memory engine with presence whose live-only publishes travel apart from the
 * stored ones, as the kv engine's do: each is handed on a little later.
 */
class SeparateLiveStreamEngine extends MemoryEngine {
  readonly presence: Presence = {
    join: () => {},
    leave: () => {},
    connect: () => {},
    disconnect: () => {},
    users: () => Promise.resolve([]),
    lookup: () => Promise.resolve(undefined),
  };
  override publish(
    channel: string,
    payload: string,
    options?: PublishOptions,
  ): Promise<StreamPosition | undefined> {
    if (options?.history === true) return super.publish(channel, payload, options);
    const later = () => super.publish(channel, payload, options);
    return new Promise((resolve) => setTimeout(() => resolve(later()), 5));
  }
}

Deno.test("a live-only join notice reaches the room before the joiner's first message", async () => {
  const engine = new SeparateLiveStreamEngine();
  await using h = harness({ engine });
  const alice = await h.open({ username: "alice" });
  await new Promise((resolve) => setTimeout(resolve, 20));
  const bob = connectNow(h, "bob");
  bob.send({ type: "message", message: "first" });
  await new Promise((resolve) => setTimeout(resolve, 20));
  await settle();
  const seen = alice.socket.frames()
    .filter((f) => f.type === "message" || (f.type === "system" && f.user === "bob"))
    .map((f) => f.type === "message" ? f.message : f.event);
  assert.deepEqual(seen, ["join", "first"]);
});
