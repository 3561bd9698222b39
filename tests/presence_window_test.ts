/**
 * Join and leave notices coalesced per room within PRESENCE_WINDOW_MS: the
 * first in a quiet room at once, the rest together at the window's end, so
 * a room that many enter at once (a restart, 15,000 idle pages) costs each
 * member a frame per window, not one per arrival.
 */

import assert from "node:assert/strict";
import { ConnectionManager, type ConnectionManagerOptions } from "../chat/connection_manager.ts";
import type { PublishOptions } from "../chat/engines/engine.ts";
import { MemoryEngine } from "../chat/engines/memory.ts";
import { presenceText } from "../chat/notices.ts";
import { type PresenceBatch, PresenceNotices } from "../chat/presence_notices.ts";
import { ChatClient } from "../client/mod.ts";
import { startServer } from "./helpers/app_server.ts";
import { eventually } from "./helpers/eventually.ts";
import { FakeClock, FakeScheduler, FakeSocket, type Frame, settle } from "./helpers/fakes.ts";

const WINDOW_MS = 1000;
/** A window is up to a half longer at random. */
const LONGEST_FIRST_WINDOW_MS = 1.5 * WINDOW_MS;

/** PresenceNotices on fake time, and what it sent as `room event users…`. */
function notices(presenceWindowMs = WINDOW_MS) {
  const clock = new FakeClock();
  const scheduler = new FakeScheduler(clock);
  const sent: string[] = [];
  const send = (room: string, b: PresenceBatch) =>
    sent.push(`${room} ${b.event} ${b.users.join(" ")}`);
  const random = () => 0; // windows of their exact length; a step of its own tests the random part
  const n = new PresenceNotices({ scheduler, presenceWindowMs, send, random });
  return { scheduler, sent, notices: n };
}

Deno.test("PresenceNotices sends the first at once and the rest at the window's end", async (t) => {
  await t.step("a quiet room's notice goes at once; the next ones wait and go together", () => {
    const { scheduler, sent, notices: n } = notices();
    n.add("lobby", "join", "ann");
    assert.deepEqual(sent, ["lobby join ann"]);
    n.add("lobby", "join", "bob");
    n.add("lobby", "join", "cy");
    n.add("lobby", "leave", "dee");
    n.add("dev", "join", "eve");
    assert.deepEqual(sent, ["lobby join ann", "dev join eve"]);
    scheduler.advance(WINDOW_MS - 1);
    assert.equal(sent.length, 2);
    scheduler.advance(1);
    assert.deepEqual(sent.slice(2), ["lobby leave dee", "lobby join bob cy"]);
  });
  await t.step("a window of several opens one twice as long; of one, one as long", () => {
    const { scheduler, sent, notices: n } = notices();
    n.add("lobby", "join", "ann");
    n.add("lobby", "join", "bob");
    n.add("lobby", "join", "cy");
    scheduler.advance(WINDOW_MS);
    n.add("lobby", "join", "dee");
    assert.deepEqual(
      sent,
      ["lobby join ann", "lobby join bob cy"],
      "dee waits: a notice just went",
    );
    scheduler.advance(WINDOW_MS);
    assert.equal(sent.length, 2, "after a window of two people, one twice as long");
    scheduler.advance(WINDOW_MS);
    assert.deepEqual(sent.at(-1), "lobby join dee");
    n.add("lobby", "join", "eve");
    scheduler.advance(WINDOW_MS);
    assert.deepEqual(sent.at(-1), "lobby join eve", "after a window of one, one as long");
    scheduler.advance(WINDOW_MS);
    assert.equal(scheduler.pending, 0, "a quiet room keeps no timer");
    n.add("lobby", "join", "fay");
    assert.deepEqual(sent.at(-1), "lobby join fay", "after a quiet window: at once again");
    n.stop();
  });
  await t.step("a steady stream of joins gets a notice per window, growing to 8 windows", () => {
    const { scheduler, sent, notices: n } = notices();
    for (let ms = 0; ms < 40 * WINDOW_MS; ms += 100) {
      n.add("lobby", "join", `u${ms}`);
      scheduler.advance(100);
    }
    // At once, then at 1, 3, 7 and 15 s (windows of 1, 2, 4 and 8 s), then every 8 s: 23, 31, 39.
    assert.equal(sent.length, 8);
    n.stop();
  });
});

Deno.test("PresenceNotices cancels a leave and a rejoin, flushes on demand, can be off", async (t) => {
  await t.step("a leave and a rejoin within the window cancel out, compared as names are", () => {
    const { scheduler, sent, notices: n } = notices();
    n.add("lobby", "join", "ann");
    n.add("lobby", "leave", "Bob");
    n.add("lobby", "join", "bob");
    n.add("lobby", "join", "cy");
    n.add("lobby", "leave", "cy");
    scheduler.advance(WINDOW_MS);
    assert.deepEqual(sent, ["lobby join ann"]);
    assert.equal(scheduler.pending, 0);
  });
  await t.step("flush sends what waits now and starts a new window", () => {
    const { scheduler, sent, notices: n } = notices();
    n.add("lobby", "join", "ann");
    n.add("lobby", "join", "bob");
    n.flush("lobby");
    n.flush("dev");
    assert.deepEqual(sent, ["lobby join ann", "lobby join bob"]);
    n.add("lobby", "join", "cy");
    assert.equal(sent.length, 2);
    n.stop();
    assert.equal(scheduler.pending, 0, "stop clears the timers");
    scheduler.advance(WINDOW_MS);
    assert.equal(sent.length, 2, "nothing after stop");
  });
  await t.step("each window is up to a half longer at random", () => {
    const clock = new FakeClock();
    const scheduler = new FakeScheduler(clock);
    const sent: string[] = [];
    const send = (_: string, b: PresenceBatch) => sent.push(b.users.join(" "));
    const n = new PresenceNotices({ scheduler, presenceWindowMs: 1000, send, random: () => 0.9 });
    n.add("lobby", "join", "ann");
    n.add("lobby", "join", "bob");
    scheduler.advance(1449);
    assert.deepEqual(sent, ["ann"]);
    scheduler.advance(1);
    assert.deepEqual(sent, ["ann", "bob"]);
    n.stop();
  });
  await t.step("a window of 0 sends each notice at once and keeps no timer", () => {
    const { scheduler, sent, notices: n } = notices(0);
    for (const user of ["ann", "bob", "cy"]) n.add("lobby", "join", user);
    assert.deepEqual(sent, ["lobby join ann", "lobby join bob", "lobby join cy"]);
    assert.equal(scheduler.pending, 0);
  });
});

Deno.test("a coalesced notice's sentence names two or three and counts the rest", () => {
  assert.equal(presenceText("join", ["ann"]), "ann joined the room");
  assert.equal(presenceText("join", ["ann", "bob"]), "ann and bob joined the room");
  assert.equal(presenceText("leave", ["ann", "bob", "cy"]), "ann, bob and cy left the room");
  assert.equal(
    presenceText("join", ["ann", "bob", "cy", "dee"]),
    "ann, bob and 2 others joined the room",
  );
});

/** A manager on fake time; `open` connects a user to the lobby. */
function harness(options: ConnectionManagerOptions = {}) {
  const clock = new FakeClock();
  const scheduler = new FakeScheduler(clock);
  const manager = new ConnectionManager({ clock, scheduler, ...options });
  const open = async (username: string) => {
    const socket = new FakeSocket();
    const conn = manager.connect(socket, { username });
    await settle();
    return { socket, conn };
  };
  return { scheduler, manager, open, [Symbol.asyncDispose]: () => manager[Symbol.asyncDispose]() };
}

/** The join and leave notices a socket got. */
const presence = (socket: FakeSocket): Frame[] =>
  socket.framesOf("system").filter((f) => f.event === "join" || f.event === "leave");

Deno.test("ten joins within the window reach a member as two frames", async () => {
  await using h = harness();
  const first = await h.open("u0");
  for (let i = 1; i < 10; i++) await h.open(`u${i}`);
  h.scheduler.advance(LONGEST_FIRST_WINDOW_MS);
  await settle();
  const got = presence(first.socket);
  assert.deepEqual(got.map((f) => [f.user, f.users]), [
    ["u0", undefined],
    ["u1", ["u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8", "u9"]],
  ]);
  assert.equal(got[1]!.connected_count, 10);
  assert.equal(got[1]!.message, "u1, u2 and 7 others joined the room");
});

Deno.test("a waiting join is announced before the joiner's first message or rename", async (t) => {
  await using h = harness();
  const first = await h.open("ann");
  await t.step("message", async () => {
    const bob = await h.open("bob");
    bob.conn.receive(JSON.stringify({ type: "message", message: "hi" }));
    await settle();
    const frames = first.socket.take().filter((f) => f.type !== "welcome");
    assert.deepEqual(frames.map((f) => f.type === "system" ? `${f.event} ${f.user}` : f.message), [
      "join ann",
      "join bob",
      "hi",
    ]);
  });
  await t.step("rename", async () => {
    h.scheduler.advance(2 * LONGEST_FIRST_WINDOW_MS);
    const cy = await h.open("cy");
    await h.open("dee");
    cy.conn.receive(JSON.stringify({ type: "rename", name: "cyril" }));
    await settle();
    const events = first.socket.take().map((f) => `${f.event} ${f.users ?? f.user}`);
    assert.deepEqual(events, ["join cy", "join dee", "rename cyril"]);
  });
});

Deno.test("ChatClient's list of users follows coalesced joins and leaves", async () => {
  await using server = await startServer();
  const client = (username: string) =>
    new ChatClient({ url: server.httpUrl("/"), username, room: "crowd" });
  await using watcher = client("watcher");
  watcher.connect();
  await eventually("open", () => watcher.state === "open");
  const others = ["p0", "p1", "p2", "p3", "p4"].map(client);
  try {
    for (const c of others) c.connect();
    const listed = () => watcher.users("crowd").toSorted().join();
    await eventually("all five listed", () => listed() === "p0,p1,p2,p3,p4,watcher");
    assert.equal(watcher.userCount("crowd"), 6);
    await Promise.all(others.slice(0, 3).map((c) => c.close()));
    await eventually("three gone", () => listed() === "p3,p4,watcher");
    assert.equal(watcher.userCount("crowd"), 3);
  } finally {
    await Promise.all(others.map((c) => c.close()));
  }
});

/** A memory engine that records the presence notices published through it. */
class NoticeLog extends MemoryEngine {
  readonly notices: string[] = [];
  override publish(channel: string, payload: string, options?: PublishOptions) {
    const frame = JSON.parse(payload);
    if (frame.type === "system") this.notices.push(`${channel} ${frame.event} ${frame.user}`);
    return super.publish(channel, payload, options);
  }
}

Deno.test("the last one out of a room publishes no leave notice: nobody is left to read it", async () => {
  const engine = new NoticeLog();
  await using h = harness({ engine, presenceWindowMs: 0 });
  const ann = await h.open("ann");
  const bob = await h.open("bob");
  bob.conn.closed(1000);
  await settle();
  ann.conn.closed(1000);
  await settle();
  assert.deepEqual(engine.notices, ["lobby join ann", "lobby join bob", "lobby leave bob"]);
});
