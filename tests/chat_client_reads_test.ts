import assert from "node:assert/strict";
import { ChatClient, newKey, READ_INTERVAL_MS, type Timers } from "../client/mod.ts";
import { ReadState } from "../client/read_state.ts";
import { startServer, type TestServer } from "./helpers/app_server.ts";
import { eventually } from "./helpers/eventually.ts";
import { FakeClock, FakeScheduler } from "./helpers/fakes.ts";

/** A ReadState on a fake clock, writing into `written` (their cids into `cids`) while `connected`. */
function readState() {
  const clock = new FakeClock();
  const scheduler = new FakeScheduler(clock);
  const timers: Timers = {
    now: () => clock.now(),
    setTimeout: (fn, ms) => scheduler.setTimeout(fn, ms),
    clearTimeout: (handle) => scheduler.clearTimeout(handle as number),
    random: () => 0.5,
  };
  const written: object[] = [];
  const cids: string[] = [];
  const link = { connected: true };
  const write = (frame: object) => {
    if (!link.connected) return false;
    const { cid, ...rest } = frame as { cid: string };
    cids.push(cid);
    return written.push(rest) > 0;
  };
  const state = new ReadState({ timers, write });
  return { state, scheduler, written, cids, link };
}

Deno.test("ReadState sends one read per interval per target, the latest, and never backwards", async (t) => {
  await t.step("the first at once, the next when the interval ends, with the newest id", () => {
    const { state, scheduler, written } = readState();
    assert.equal(state.mark({ room: "lobby" }, { id: 3, epoch: "e" }), true);
    assert.equal(state.mark({ room: "lobby" }, { id: 4, epoch: "e" }), true);
    assert.equal(state.mark({ room: "lobby" }, { id: 5, epoch: "e" }), true);
    assert.equal(written.length, 1);
    scheduler.advance(READ_INTERVAL_MS);
    assert.deepEqual(written, [
      { type: "read", room: "lobby", id: 3, epoch: "e" },
      { type: "read", room: "lobby", id: 5, epoch: "e" },
    ]);
    assert.deepEqual(state.position({ room: "lobby" }), { id: 5, epoch: "e" });
  });
  await t.step("other targets are paced apart", () => {
    const { state, written } = readState();
    state.mark({ room: "lobby" }, { id: 1, epoch: "e" });
    state.mark({ with: "uAAAAAAAAAAAAAAAA", to: "bob" }, { id: 9, epoch: "e" });
    assert.deepEqual(written[1], {
      type: "read",
      with: "uAAAAAAAAAAAAAAAA",
      to: "bob",
      id: 9,
      epoch: "e",
    });
  });
  await t.step("backwards is refused; another epoch replaces", () => {
    const { state, written } = readState();
    state.mark({ room: "lobby" }, { id: 7, epoch: "e" });
    assert.equal(state.mark({ room: "lobby" }, { id: 6, epoch: "e" }), false);
    assert.equal(state.receive({ type: "read", room: "lobby", id: 2, epoch: "e" }), false);
    assert.equal(state.receive({ type: "read", room: "lobby", id: 2, epoch: "f" }), true);
    assert.equal(written.length, 1);
  });
  await t.step("written while disconnected, sent after the welcome's flush", () => {
    const { state, written, link } = readState();
    link.connected = false;
    state.mark({ room: "lobby" }, { id: 2, epoch: "e" });
    assert.equal(written.length, 0);
    link.connected = true;
    state.flush();
    assert.deepEqual(written, [{ type: "read", room: "lobby", id: 2, epoch: "e" }]);
  });
  await t.step("a write refused (no token to spare) is tried again an interval later", () => {
    const { state, scheduler, written, link } = readState();
    link.connected = false;
    state.mark({ room: "lobby" }, { id: 2, epoch: "e" });
    link.connected = true;
    assert.equal(written.length, 0);
    scheduler.advance(READ_INTERVAL_MS);
    assert.deepEqual(written, [{ type: "read", room: "lobby", id: 2, epoch: "e" }]);
    scheduler.advance(READ_INTERVAL_MS * 3);
    assert.equal(written.length, 1, "sent once");
  });
  await t.step(
    "refused for its pace: sent again an interval later, or the newer one instead",
    () => {
      const { state, scheduler, written, cids } = readState();
      state.mark({ room: "lobby" }, { id: 2, epoch: "e" });
      assert.equal(state.rateLimited("r1"), false, "not a cid of its frames");
      assert.equal(state.rateLimited(cids[0]!), true);
      assert.equal(state.rateLimited(cids[0]!), false, "taken once");
      scheduler.advance(READ_INTERVAL_MS);
      assert.deepEqual(written.at(-1), { type: "read", room: "lobby", id: 2, epoch: "e" });
      assert.notEqual(cids[1], cids[0], "each sending has its own cid");
      state.mark({ room: "lobby" }, { id: 3, epoch: "e" });
      assert.equal(state.rateLimited(cids[1]!), true);
      scheduler.advance(READ_INTERVAL_MS * 3);
      assert.deepEqual(written.slice(2), [{ type: "read", room: "lobby", id: 3, epoch: "e" }]);
    },
  );
  await t.step("receipts are kept per person", () => {
    const { state } = readState();
    assert.equal(state.receive({ type: "seen", with: "uB", id: 4, epoch: "e" }), true);
    assert.deepEqual(state.seenBy("uB"), { id: 4, epoch: "e" });
    // Told again when a conversation is opened: shown again; an older one is not.
    assert.equal(state.receive({ type: "seen", with: "uB", id: 4, epoch: "e" }), true);
    assert.equal(state.receive({ type: "seen", with: "uB", id: 3, epoch: "e" }), false);
    assert.equal(state.seenBy("uC"), undefined);
  });
});

/** A ChatClient of `name` with `key` on the server. */
function chatClient(server: TestServer, name: string, key: string): ChatClient {
  return new ChatClient({ url: server.httpUrl("/"), username: name, key });
}

Deno.test("ChatClient shares read positions between tabs and shows read receipts", async (t) => {
  await using server = await startServer();
  const aliceKey = newKey();
  await using tab1 = chatClient(server, "alice", aliceKey);
  await using tab2 = chatClient(server, "alice", aliceKey);
  await using bob = chatClient(server, "bob", newKey());
  const seen = new Map<ChatClient, string[]>();
  for (const c of [tab1, tab2, bob]) {
    seen.set(c, []);
    c.on("message", ({ frame }) => seen.get(c)!.push(frame.message));
    c.on("private", ({ frame }) => seen.get(c)!.push(frame.message));
    c.connect();
  }
  await eventually("all open", () => [tab1, tab2, bob].every((c) => c.state === "open"));
  for (const text of ["one", "two", "three"]) await bob.send(text);
  const has = (c: ChatClient, text: string) => seen.get(c)!.includes(text);
  await eventually("both tabs have three", () => has(tab1, "three") && has(tab2, "three"));

  await t.step("reading in one tab clears the other's unread count", async () => {
    const moved: number[] = [];
    tab2.on("read", (frame) => moved.push(frame.id));
    assert.equal(tab1.markRead(), true);
    await eventually("tab 2 hears of it", () => moved.length === 1);
    assert.equal(tab2.unread(), 0);
    await bob.send("four");
    await eventually("tab 2 counts one unread", () => tab2.unread() === 1);
  });
  await t.step("a new tab gets the position on join", async () => {
    await using tab3 = chatClient(server, "alice", aliceKey);
    tab3.connect();
    await eventually("tab 3 knows it", () => tab3.unread() === 1);
  });
  await t.step("a conversation's reader shows up as seen to the other person", async () => {
    const sent = await bob.send("private hello", { to: "alice" });
    assert.equal(sent.status, "stored");
    const bobUid = bob.uid;
    await eventually("tab 1 has it", () => has(tab1, "private hello"));
    assert.equal(tab1.markRead({ with: bobUid, to: "bob" }), true);
    await eventually("bob sees the receipt", () => bob.seenBy(tab1.uid)?.id !== undefined);
  });
  await t.step("the list of conversations names bob, read", async () => {
    const lists: { with: string; read_id: number; last_id: number }[][] = [];
    tab2.on("conversations", (list) => lists.push(list));
    assert.equal(tab2.listConversations(), true);
    await eventually("the list came", () => lists.length === 1);
    const [only] = lists[0]!;
    assert.equal(only?.with, bob.uid);
    assert.equal(only?.read_id, only?.last_id);
  });
});

Deno.test("a fast typist who reads as they go is never told rate_limited", async () => {
  await using server = await startServer({ RATE_LIMIT_PER_S: "4", RATE_LIMIT_BURST: "4" });
  await using alice = chatClient(server, "alice", newKey());
  const errors: string[] = [];
  alice.on("error", (frame) => errors.push(frame.code));
  // As the page does: every message that comes marks the room read, and the person types on.
  alice.on("message", () => {
    alice.markRead();
    alice.typing();
  });
  alice.connect();
  await eventually("open", () => alice.state === "open");
  const fates = await Promise.all(Array.from({ length: 12 }, (_, i) => alice.send(`m${i}`)));
  assert.deepEqual(fates.map((f) => f.status), Array(12).fill("stored"));
  assert.deepEqual(errors, []);
});
