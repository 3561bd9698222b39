import assert from "node:assert/strict";
import { startServer, type TestServer } from "./helpers/app_server.ts";
import type { HistoryPage, HistoryQuery } from "../chat/engines/engine.ts";
import { MemoryEngine } from "../chat/engines/memory.ts";
import { createLogger } from "../chat/logger.ts";
import { CONVERSATIONS_INTERVAL_MS } from "../chat/protocol.ts";
import { ENGINE_NAMES, engineEnv } from "./helpers/engine_env.ts";
import { eventually } from "./helpers/eventually.ts";
import { FakeClock, type Frame } from "./helpers/fakes.ts";
import { TestClient } from "./helpers/ws_client.ts";

const KEYS = {
  alice: "alice-key-0123456789abcdef",
  bob: "bob-key-0123456789abcdefgh",
};

/** A tab of a person with a browser key: its client, its uid and the room's epoch. */
async function tab(server: TestServer, name: string, key?: string) {
  const protocols = key === undefined ? ["chat"] : ["chat", `key.${key}`];
  const client = await TestClient.connect(server.url(`/ws/chat/${name}?room=lobby`), { protocols });
  const welcome = await client.next("welcome");
  return { client, uid: String(welcome.uid), epoch: String(welcome.epoch) };
}

/** Sends `count` room messages and returns the id of the last, as the sender saw it. */
async function say(client: TestClient, count: number): Promise<number> {
  let last: Frame | undefined;
  for (let i = 0; i < count; i++) {
    client.sendJson({ type: "message", message: `m${i}`, cid: `c${i}` });
    last = await client.next((f) => f.type === "message" && f.cid === `c${i}`);
  }
  return Number(last!.id);
}

Deno.test("a read position is stored per identity, shared by its tabs, and given back on join", async (t) => {
  for (const engine of ENGINE_NAMES) {
    await t.step(engine, async () => {
      await using store = await engineEnv(engine);
      await using server = await startServer(store.env);
      const first = await tab(server, "alice", KEYS.alice);
      const second = await tab(server, "alice", KEYS.alice);
      try {
        const last = await say(first.client, 3);
        first.client.sendJson({ type: "read", room: "lobby", id: last - 1, epoch: first.epoch });
        const moved = await second.client.next("read");
        assert.deepEqual(moved, { type: "read", room: "lobby", id: last - 1, epoch: first.epoch });
        // Past the newest message, of another epoch, or in a conversation that does not
        // exist: nothing is stored, so made-up positions cannot fill the store.
        first.client.sendJson({ type: "read", room: "lobby", id: last + 1, epoch: first.epoch });
        first.client.sendJson({ type: "read", room: "lobby", id: last, epoch: "other" });
        const nobody = "uAAAAAAAAAAAAAAAA";
        first.client.sendJson({ type: "read", with: nobody, id: 1, epoch: first.epoch });
        // Backwards is not stored: a stale tab does not undo what another read.
        first.client.sendJson({ type: "read", room: "lobby", id: 1, epoch: first.epoch });
        first.client.sendJson({ type: "read", room: "lobby", id: last, epoch: first.epoch });
        assert.equal((await second.client.next("read")).id, last);
        await first.client.close();
        await second.client.close();
        const later = await tab(server, "alice", KEYS.alice);
        try {
          const given = await later.client.next("read");
          assert.deepEqual(given, { type: "read", room: "lobby", id: last, epoch: first.epoch });
        } finally {
          await later.client.close();
        }
      } finally {
        await first.client.close();
        await second.client.close();
      }
    });
  }
});

Deno.test("a read position needs an identity and a room the connection is in", async (t) => {
  await using server = await startServer();
  const keyless = await tab(server, "carol");
  const keyed = await tab(server, "alice", KEYS.alice);
  try {
    await t.step("without a key: no_identity", async () => {
      keyless.client.sendJson({ type: "read", room: "lobby", id: 1, epoch: keyless.epoch });
      assert.equal((await keyless.client.next("error")).code, "no_identity");
      keyless.client.sendJson({ type: "conversations" });
      assert.equal((await keyless.client.next("error")).code, "no_identity");
    });
    await t.step("a room not joined: not_in_room", async () => {
      keyed.client.sendJson({ type: "read", room: "elsewhere", id: 1, epoch: keyed.epoch });
      assert.equal((await keyed.client.next("error")).code, "not_in_room");
    });
    await t.step("malformed: bad_message", async () => {
      const bad = [
        { type: "read", id: 1, epoch: keyed.epoch },
        { type: "read", room: "lobby", with: keyed.uid, id: 1, epoch: keyed.epoch },
        { type: "read", room: "lobby", id: 0, epoch: keyed.epoch },
        { type: "read", room: "lobby", id: 1.5, epoch: keyed.epoch },
        { type: "read", room: "lobby", id: 1, epoch: "no spaces" },
        { type: "read", with: "bob", id: 1, epoch: keyed.epoch },
      ];
      for (const frame of bad) {
        keyed.client.sendJson(frame);
        assert.equal((await keyed.client.next("error")).code, "bad_message", JSON.stringify(frame));
      }
    });
  } finally {
    await keyless.client.close();
    await keyed.client.close();
  }
});

Deno.test("conversations are listed with unread counts and read receipts", async (t) => {
  // A clock the test moves: a connection's conversations are listed once per 2 s at most.
  const clock = new FakeClock(Date.now());
  await using server = await startServer({}, { clock });
  const alice = await tab(server, "alice", KEYS.alice);
  const bob = await tab(server, "bob", KEYS.bob);
  try {
    const ids: number[] = [];
    for (const text of ["p1", "p2", "p3"]) {
      alice.client.sendJson({ type: "private", to: "bob", message: text });
      ids.push(Number((await bob.client.next((f) => f.message === text)).id));
    }
    let epoch = "";
    await t.step(
      "the list names the other person with the newest id and nothing read",
      async () => {
        bob.client.sendJson({ type: "conversations" });
        const list = await bob.client.next("conversations");
        const [only, ...rest] = list.conversations as Frame[];
        assert.deepEqual(rest, []);
        epoch = String(only!.epoch);
        assert.deepEqual(only, {
          with: alice.uid,
          name: "alice",
          last_id: ids[2],
          epoch,
          read_id: 0,
          seen_id: 0,
        });
      },
    );
    await t.step("reading passes a receipt to the other person live", async () => {
      bob.client.sendJson({ type: "read", with: alice.uid, to: "alice", id: ids[1], epoch });
      const seen = await alice.client.next("seen");
      assert.deepEqual(seen, { type: "seen", with: bob.uid, id: ids[1], epoch });
    });
    await t.step("both lists show it: one unread for bob, seen up to it for alice", async () => {
      clock.time += CONVERSATIONS_INTERVAL_MS;
      bob.client.sendJson({ type: "conversations" });
      const [mine] = (await bob.client.next("conversations")).conversations as Frame[];
      assert.equal(mine!.read_id, ids[1]);
      alice.client.sendJson({ type: "conversations" });
      const [theirs] = (await alice.client.next("conversations")).conversations as Frame[];
      assert.equal(theirs!.with, bob.uid);
      assert.equal(theirs!.seen_id, ids[1]);
      assert.equal(theirs!.read_id, 0);
    });
    await t.step("asked again within 2 s: rate_limited, and answered after", async () => {
      alice.client.sendJson({ type: "conversations" });
      const error = await alice.client.next("error");
      assert.equal(error.code, "rate_limited");
      clock.time += CONVERSATIONS_INTERVAL_MS;
      alice.client.sendJson({ type: "conversations" });
      await alice.client.next("conversations");
    });
    await t.step(
      "opening the conversation gives its epoch, the own position and the receipt",
      async () => {
        alice.client.sendJson({ type: "conversation", with: bob.uid });
        const frame = await alice.client.next("conversation");
        assert.equal(frame.epoch, epoch);
        assert.deepEqual(await alice.client.next("seen"), {
          type: "seen",
          with: bob.uid,
          id: ids[1],
          epoch,
        });
      },
    );
    await t.step("a receipt naming someone else's name goes nowhere", async () => {
      const carol = await tab(server, "carol", "carol-key-0123456789abcde");
      try {
        bob.client.sendJson({ type: "read", with: alice.uid, to: "carol", id: ids[2], epoch });
        alice.client.sendJson({ type: "private", to: "bob", message: "after" });
        await bob.client.next((f) => f.message === "after");
        carol.client.sendJson({ type: "users" });
        await carol.client.next("users");
        assert.equal(carol.client.frames.some((f) => f.type === "seen"), false);
      } finally {
        await carol.client.close();
      }
    });
  } finally {
    await alice.client.close();
    await bob.client.close();
  }
});

/** A memory engine whose read channels ("^…") cannot be read, as a store that is down. */
class ReadsDownEngine extends MemoryEngine {
  override history(channel: string, query: HistoryQuery): Promise<HistoryPage> {
    if (channel.startsWith("^")) return Promise.reject(new Error("Store down"));
    return super.history(channel, query);
  }
}

Deno.test("reads failing while the store is down are logged once per interval, not per read", async () => {
  const lines: { event?: string; count?: number }[] = [];
  const logger = createLogger({ level: "warn", write: (line) => lines.push(JSON.parse(line)) });
  await using server = await startServer({}, { engine: new ReadsDownEngine(), logger });
  const alice = await tab(server, "alice", KEYS.alice);
  try {
    const last = await say(alice.client, 1);
    // Fewer than the rate limit's burst (20), with the message and the users frame.
    for (let i = 0; i < 15; i++) {
      alice.client.sendJson({ type: "read", room: "lobby", id: last, epoch: alice.epoch });
    }
    // A frame after them: its answer comes once the reads were handled.
    alice.client.sendJson({ type: "users" });
    await alice.client.next("users");
    await eventually("a failure logged", () => lines.some((l) => l.event === "read_failed"));
    assert.equal(lines.filter((l) => l.event === "read_failed").length, 1);
  } finally {
    await alice.client.close();
  }
});

Deno.test("read positions and receipts reach tabs and people on another process", async (t) => {
  for (const engine of ["kv", "redis"] as const) {
    await t.step(engine, async () => {
      await using store = await engineEnv(engine);
      await using a = await startServer(store.env);
      await using b = await startServer(store.env);
      const alice = await tab(a, "alice", KEYS.alice);
      const aliceOnB = await tab(b, "alice", KEYS.alice);
      const bob = await tab(b, "bob", KEYS.bob);
      try {
        bob.client.sendJson({ type: "private", to: "alice", message: "across" });
        const got = await alice.client.next((f) => f.message === "across");
        const position = { id: Number(got.id), epoch: alice.epoch };
        alice.client.sendJson({ type: "read", with: bob.uid, to: "bob", ...position });
        assert.deepEqual(await bob.client.next("seen"), {
          type: "seen",
          with: alice.uid,
          ...position,
        });
        assert.deepEqual(await aliceOnB.client.next("read"), {
          type: "read",
          with: bob.uid,
          ...position,
        });
      } finally {
        for (const c of [alice, aliceOnB, bob]) await c.client.close();
      }
    });
  }
});
