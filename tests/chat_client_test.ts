import assert from "node:assert/strict";
import {
  ChatClient,
  type ChatClientOptions,
  describeClose,
  type Fate,
  mentions,
  newKey,
  PING_TIMEOUT_REASON,
  reconnectDelay,
  type StateEvent,
} from "../client/mod.ts";
import { startServer, type TestServer } from "./helpers/app_server.ts";
import { eventually } from "./helpers/eventually.ts";
import { TestClient } from "./helpers/ws_client.ts";

/** A ChatClient on `server` whose sockets the test can reach, and what it saw. */
function chatClient(server: TestServer, options: Partial<ChatClientOptions> = {}) {
  const sockets: WebSocket[] = [];
  const client = new ChatClient({
    url: server.httpUrl("/"),
    reconnect: { minDelayMs: 20, maxDelayMs: 50 },
    webSocket: (url, protocols) => {
      const socket = new WebSocket(url, protocols);
      sockets.push(socket);
      return socket;
    },
    ...options,
  });
  const messages: string[] = [];
  const states: StateEvent[] = [];
  const gaps: string[] = [];
  const missed: string[] = [];
  client.on("message", ({ frame, missed: away }) => {
    messages.push(frame.message);
    if (away) missed.push(frame.message);
  });
  client.on("state", (event) => states.push(event));
  client.on("gap", ({ room }) => gaps.push(room));
  const open = () => eventually("the client is open", () => client.state === "open");
  return { client, sockets, messages, missed, states, gaps, open };
}

Deno.test("ChatClient resumes after a dropped socket: every message once, in order", async () => {
  // Without `since` a reconnect would get only the last two messages, and m4 would be lost.
  await using server = await startServer({ HISTORY_ON_JOIN: "2" });
  const alice = chatClient(server, { username: "alice" });
  await using _ = alice.client;
  await using bob = await TestClient.connect(server.url("/ws/chat/bob"));
  await bob.next("welcome");
  alice.client.connect();
  await alice.open();
  for (const text of ["m1", "m2", "m3"]) bob.sendJson({ type: "message", message: text });
  await eventually("alice has m3", () => alice.messages.includes("m3"));

  alice.sockets.at(-1)?.close();
  await eventually("alice is away", () => alice.client.state !== "open");
  for (const text of ["m4", "m5", "m6"]) bob.sendJson({ type: "message", message: text });
  await eventually("bob's m6 is stored", () => bob.frames.some((f) => f.message === "m6"));
  await alice.open();
  await eventually("alice has m6", () => alice.messages.includes("m6"));
  assert.deepEqual(alice.messages, ["m1", "m2", "m3", "m4", "m5", "m6"]);
  assert.deepEqual(alice.gaps, []);
  assert.deepEqual(alice.missed, ["m4", "m5", "m6"], "missed is what came while away");
  assert.ok(alice.states.some((s) => s.state === "reconnecting"), "no reconnecting state");
});

Deno.test("ChatClient after a server that lost its history: a gap, and reused ids are shown", async () => {
  await using first = await startServer();
  await using second = await startServer();
  let server = first;
  const alice = chatClient(first, {
    username: "alice",
    // The "restarted" server is another one: the socket factory follows it.
    webSocket: (url, protocols) => {
      const socket = new WebSocket(url.replace(`:${first.port}/`, `:${server.port}/`), protocols);
      alice.sockets.push(socket);
      return socket;
    },
  });
  await using _ = alice.client;
  alice.client.connect();
  await alice.open();
  await alice.client.join("dev");
  for (const text of ["m1", "m2"]) await alice.client.send(text);
  for (const text of ["d1", "d2", "d3"]) await alice.client.send(text, { room: "dev" });
  server = second;
  await using bob = await TestClient.connect(second.url("/ws/chat/bob?room=dev"));
  await bob.next("welcome");
  // Ids start again at 1 on the new server: alice has seen 1 to 3 from the old one.
  for (const text of ["n1", "n2"]) {
    bob.sendJson({ type: "message", message: text, room: "dev" });
    await bob.next((f) => f.message === text);
  }
  alice.sockets.at(-1)?.close();
  await eventually("alice has n2", () => alice.messages.includes("n2"));
  assert.deepEqual(alice.gaps.sort(), ["dev", "lobby"]);
  assert.deepEqual(alice.messages, ["m1", "m2", "d1", "d2", "d3", "n1", "n2"]);
});

Deno.test("ChatClient reads batched frames: every line of one is an event", async () => {
  await using server = await startServer();
  const alice = chatClient(server, { username: "alice" });
  await using _ = alice.client;
  const raw: string[] = [];
  const renames: string[] = [];
  alice.client.on("system", ({ frame }) => frame.event === "rename" && renames.push(frame.room));
  alice.client.connect();
  await alice.open();
  alice.sockets[0]?.addEventListener("message", (event) => raw.push(String(event.data)));
  await alice.client.join("a");
  await alice.client.join("b");
  // One rename makes a notice in each of the three rooms in one turn: one batched frame.
  const renamed = alice.client.rename("alicia");
  await eventually("three notices", () => renames.length === 3, { timeoutMs: 3000 });
  assert.equal(await renamed, "alicia");
  assert.deepEqual(renames.sort(), ["a", "b", "lobby"]);
  assert.ok(raw.some((data) => data.includes("\n")), "no batched frame arrived");
});

Deno.test("ChatClient reports each message's fate", async (t) => {
  await using server = await startServer({ MAX_MESSAGE_BYTES: "512" });
  const alice = chatClient(server, { username: "alice" });
  await using _ = alice.client;

  await t.step("sent before connecting: queued, then stored", async () => {
    const fate = alice.client.send("early");
    alice.client.connect();
    const result = await fate;
    assert.equal(result.status, "stored");
    assert.equal(result.status === "stored" && result.frame.message, "early");
  });

  await t.step("a private message to nobody: refused with the server's reason", async () => {
    const result = await alice.client.send("psst", { to: "nobody" });
    assert.deepEqual(result, {
      status: "refused",
      code: "user_not_found",
      reason: "User not online: nobody",
    });
  });

  await t.step("too big for the server's limit: refused before sending", async () => {
    const result = await alice.client.send("x".repeat(600));
    assert.equal(result.status, "refused");
    assert.equal(result.status === "refused" && result.code, "message_too_big");
    assert.equal(alice.client.state, "open");
  });

  await t.step("closing refuses what still waits", async () => {
    await alice.client.close();
    const result = await alice.client.send("late");
    assert.equal(result.status === "refused" && result.code, "closed");
  });
});

Deno.test("ChatClient sends to rooms as the server spells them", async (t) => {
  await using server = await startServer();
  const alice = chatClient(server, { username: "alice", room: "Dev" });
  await using _ = alice.client;
  alice.client.connect();
  await t.step("the first room given in capitals", async () => {
    assert.equal((await alice.client.send("hi")).status, "stored");
    assert.deepEqual(alice.client.rooms, ["dev"]);
    assert.deepEqual(alice.client.users("DEV"), ["alice"]);
  });
  await t.step("a room the client is not in: refused by the server", async () => {
    const fate = await alice.client.send("where?", { room: "elsewhere" });
    assert.equal(fate.status === "refused" && fate.code, "not_in_room");
  });
});

Deno.test("ChatClient refuses a message over the limit queued before the first welcome", async () => {
  await using server = await startServer({ MAX_MESSAGE_BYTES: "512" });
  const alice = chatClient(server, { username: "alice" });
  await using _ = alice.client;
  const big = alice.client.send("x".repeat(600));
  const small = alice.client.send("small");
  alice.client.connect();
  const fate = await big;
  assert.equal(fate.status === "refused" && fate.code, "message_too_big");
  assert.equal((await small).status, "stored");
  assert.equal(alice.sockets.length, 1, "the socket was closed for the big frame");
});

Deno.test("ChatClient keeps trying while the server is full", async () => {
  await using server = await startServer({ MAX_CONNECTIONS: "1" });
  const bob = await TestClient.connect(server.url("/ws/chat/bob"));
  await bob.next("welcome");
  const alice = chatClient(server, { username: "alice" });
  await using _ = alice.client;
  alice.client.connect();
  await eventually("refused once", () => alice.states.some((s) => s.state === "reconnecting"));
  assert.equal(alice.states.find((s) => s.state === "reconnecting")?.reason, "Server is full");
  await bob.close();
  await alice.open();
});

Deno.test("ChatClient paces a fast typist under the rate limit: nothing is lost", async () => {
  await using server = await startServer({ RATE_LIMIT_PER_S: "20", RATE_LIMIT_BURST: "5" });
  const alice = chatClient(server, { username: "alice" });
  await using _ = alice.client;
  alice.client.connect();
  await alice.open();
  const texts = Array.from({ length: 26 }, (_, i) => `fast ${i}`);
  const fates: Fate[] = await Promise.all(texts.map((text) => alice.client.send(text)));
  assert.deepEqual(fates.map((f) => f.status), texts.map(() => "stored"));
  await eventually("alice saw all", () => alice.messages.length === texts.length);
  assert.deepEqual(alice.messages, texts);
});

Deno.test("ChatClient answers the heartbeat and stays connected", async () => {
  await using server = await startServer({
    HEARTBEAT_INTERVAL_MS: "100",
    HEARTBEAT_TIMEOUT_MS: "300",
  });
  const alice = chatClient(server, { username: "alice" });
  await using _ = alice.client;
  alice.client.connect();
  await alice.open();
  await new Promise((resolve) => setTimeout(resolve, 900));
  assert.equal(alice.client.state, "open");
  assert.equal(alice.sockets.length, 1, "the client reconnected");
});

Deno.test("ChatClient stops on a final close and keeps trying on others", async (t) => {
  await t.step("a name in use before any welcome: closed with 4009", async () => {
    await using server = await startServer();
    await using bob = await TestClient.connect(server.url("/ws/chat/bob"));
    await bob.next("welcome");
    const other = chatClient(server, { username: "BOB" });
    await using _ = other.client;
    other.client.connect();
    await eventually("closed", () => other.client.state === "closed");
    assert.equal(other.states.at(-1)?.code, 4009);
    assert.equal(other.sockets.length, 1);
  });
  await t.step("kicked: closed with 4003, no reconnect", async () => {
    await using server = await startServer({ ADMIN_TOKEN: "admin-secret" });
    const alice = chatClient(server, { username: "alice" });
    await using _ = alice.client;
    alice.client.connect();
    await alice.open();
    const response = await fetch(server.httpUrl("/api/admin/users/alice/kick"), {
      method: "POST",
      headers: { authorization: "Bearer admin-secret" },
    });
    await response.body?.cancel();
    await eventually("closed", () => alice.client.state === "closed");
    assert.equal(alice.states.at(-1)?.code, 4003);
    assert.equal(alice.sockets.length, 1);
  });
});

Deno.test("ChatClient joins, leaves and renames on one socket", async () => {
  await using server = await startServer();
  const alice = chatClient(server, { username: "alice" });
  await using _ = alice.client;
  alice.client.connect();
  await alice.open();
  const joined = await alice.client.join("Dev");
  assert.equal(joined.room, "dev");
  assert.deepEqual(alice.client.rooms, ["lobby", "dev"]);
  assert.equal((await alice.client.send("in dev", { room: "dev" })).status, "stored");
  await assert.rejects(alice.client.join("#bad room!"), { code: "invalid_room" });
  assert.equal(await alice.client.rename("alicia"), "alicia");
  assert.equal(alice.client.username, "alicia");
  alice.client.leave("dev");
  await eventually("left dev", () => alice.client.rooms.length === 1);
});

Deno.test("ChatClients with one key share a name: two tabs of one person", async () => {
  await using server = await startServer();
  const key = newKey();
  assert.match(key, /^[A-Za-z0-9_-]{22}$/);
  const one = chatClient(server, { username: "alice", key });
  const two = chatClient(server, { username: "alice", key });
  const other = chatClient(server, { username: "alice", key: newKey() });
  await using _1 = one.client;
  await using _2 = two.client;
  await using _3 = other.client;
  one.client.connect();
  await one.open();
  two.client.connect();
  await two.open();
  assert.deepEqual(two.client.users(), ["alice"]);
  other.client.connect();
  await eventually("the other browser is refused", () => other.client.state === "closed");
  assert.equal(other.states.at(-1)?.code, 4009);
});

Deno.test("ChatClient reads a private conversation again after a reconnect, each message once", async (t) => {
  await using server = await startServer();
  const aliceKey = newKey();
  const alice = chatClient(server, { username: "alice", key: aliceKey });
  const bob = chatClient(server, { username: "bob", key: newKey() });
  await using _a = alice.client;
  await using _b = bob.client;
  // Alice's other tab keeps her online while this one is away.
  await using otherTab = await TestClient.connect(server.url("/ws/chat/alice"), {
    protocols: ["chat", `key.${aliceKey}`],
  });
  await otherTab.next("welcome");
  const privates: { message: string; missed: boolean }[] = [];
  alice.client.on(
    "private",
    ({ frame, missed }) => privates.push({ message: frame.message, missed }),
  );
  alice.client.connect();
  bob.client.connect();
  await alice.open();
  await bob.open();

  await t.step(
    "what came while this tab was away comes after the reconnect, marked missed",
    async () => {
      assert.equal((await bob.client.send("before", { to: "alice" })).status, "stored");
      await eventually("alice has it", () => privates.length === 1);
      alice.sockets.at(-1)?.close();
      await eventually("alice is away", () => alice.client.state !== "open");
      assert.equal((await bob.client.send("while away", { to: "alice" })).status, "stored");
      await alice.open();
      await eventually("alice has it", () => privates.some((p) => p.message === "while away"));
      assert.equal((await bob.client.send("after", { to: "alice" })).status, "stored");
      await eventually("alice has after", () => privates.some((p) => p.message === "after"));
      assert.deepEqual(privates, [
        { message: "before", missed: false },
        { message: "while away", missed: true },
        { message: "after", missed: false },
      ]);
    },
  );
  await t.step(
    "a new page asks for the conversation by uid and gets each message once",
    async () => {
      const page = chatClient(server, { username: "alice", key: aliceKey });
      await using _p = page.client;
      const shown: string[] = [];
      page.client.on("private", ({ frame }) => shown.push(frame.message));
      page.client.connect();
      await page.open();
      assert.ok(page.client.conversation(bob.client.uid));
      await eventually("all three", () => shown.length === 3);
      assert.ok(page.client.conversation(bob.client.uid));
      assert.equal((await bob.client.send("last", { to: "alice" })).status, "stored");
      await eventually("the last", () => shown.includes("last"));
      assert.deepEqual(shown, ["before", "while away", "after", "last"]);
    },
  );
});

Deno.test("ChatClient rename to its own name, or in no room, settles at once", async () => {
  await using server = await startServer();
  const alice = chatClient(server, { username: "alice" });
  await using _ = alice.client;
  alice.client.connect();
  await alice.open();
  assert.equal(await alice.client.rename("ALICE"), "alice");
  assert.ok(alice.client.leave("lobby"));
  await eventually("in no room", () => alice.client.rooms.length === 0);
  assert.equal(await alice.client.rename("alicia"), "alicia");
  assert.equal(await alice.client.rename("bob"), "bob");
});

Deno.test("ChatClient asks for a slower heartbeat and keeps it across a reconnect", async () => {
  await using server = await startServer({
    HEARTBEAT_INTERVAL_MS: "100",
    HEARTBEAT_TIMEOUT_MS: "300",
  });
  const pings: number[] = [];
  const acks: unknown[] = [];
  const alice = chatClient(server, {
    username: "alice",
    webSocket: (url, protocols) => {
      const socket = new WebSocket(url, protocols);
      alice.sockets.push(socket);
      socket.addEventListener("message", (event) => {
        for (const line of String(event.data).split("\n")) {
          const frame = JSON.parse(line);
          if (frame.type === "ping") pings.push(Date.now());
          if (frame.type === "heartbeat_ack" && frame.heartbeat) acks.push(frame.heartbeat);
        }
      });
      return socket;
    },
  });
  await using _ = alice.client;
  alice.client.connect();
  await alice.open();
  alice.client.setHeartbeatInterval(1000);
  await eventually("the ack", () => acks.length === 1);
  assert.deepEqual(acks[0], { interval_ms: 1000, timeout_ms: 3000 });
  const from = Date.now();
  await new Promise((resolve) => setTimeout(resolve, 1500));
  assert.ok(pings.filter((at) => at > from).length <= 2, `pinged ${pings.length} times`);
  assert.equal(alice.client.state, "open");
  alice.sockets[0]!.close();
  await eventually("asked again on the new socket", () => acks.length === 2);
});

Deno.test("reconnect delays grow with jitter between the floor and a doubling ceiling", () => {
  assert.equal(reconnectDelay({ attempt: 3, random: 0 }), 1000);
  assert.equal(reconnectDelay({ attempt: 3, random: 0.5 }), 8500);
  assert.equal(reconnectDelay({ attempt: 40, random: 0.999 }), 29971);
});

Deno.test("clients dropped together spread even their first reconnect over a second", () => {
  const first = [0, 0.25, 0.5, 0.75, 0.999].map((random) => reconnectDelay({ attempt: 0, random }));
  assert.deepEqual(first, [1000, 1250, 1500, 1750, 1999]);
});

Deno.test("a close is described for a person", () => {
  assert.equal(describeClose(1001, PING_TIMEOUT_REASON), "Connection stopped answering");
  assert.equal(describeClose(1001, ""), "Server shutting down");
  assert.equal(describeClose(4009, "Username already in use"), "Username already in use");
  assert.equal(describeClose(1006), "Connection lost");
  assert.equal(describeClose(0), "Could not reach the server");
});

Deno.test("mentions finds @name as the server compares names", async (t) => {
  for (
    const [text, name, expected] of [
      ["hey @anne, look", "Anne", true],
      ["@ＡＮＮＥ!", "anne", true],
      ["@Anne Marie are you there", "Anne Marie", true],
      ["@Anne Marie are you there", "Anne", true],
      ["just chatting with annex", "Anne", false],
      ["mail anne@example.com", "example.com", false],
      ["@annex", "Anne", false],
    ] as const
  ) {
    await t.step(`${JSON.stringify(text)} mentions ${name}: ${expected}`, () => {
      assert.equal(mentions(text, name), expected);
    });
  }
});
