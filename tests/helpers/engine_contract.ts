/**
 * The contract every engine keeps, as one test suite: call
 * {@linkcode testEngineContract} once per engine from a test file.
 *
 * ```ts
 * testEngineContract({ name: "memory", open: ..., shared: false, persistent: false });
 * ```
 *
 * @module
 */

import assert from "node:assert/strict";
import { type Draft, type Engine, privateChannel, userChannel } from "../../chat/engines/engine.ts";
import type { StoredFrame } from "../../chat/protocol.ts";
import { ConnectionManager } from "../../chat/connection_manager.ts";
import { FakeSocket, type Frame } from "./fakes.ts";

/** A fresh, empty store on which a step opens engines. */
export interface ContractStore extends AsyncDisposable {
  /** A new, unstarted engine on this store; every engine of a store shares its data. */
  engine(options: { historyLimit: number }): Engine;
}

/** An engine under test. */
export interface ContractSubject {
  /** The engine's name, for test names. */
  name: string;
  /** Opens a fresh, empty store; the step disposes it. */
  open(): Promise<ContractStore>;
  /** Whether two engines on one store deliver each other's frames (as processes would). */
  shared: boolean;
  /** Whether a new engine on the store sees what a disposed one stored. */
  persistent: boolean;
  /** Skips the suite; say why in the name or a message. Default false. */
  ignore?: boolean;
}

/** A started engine and what it delivered. */
interface Started {
  engine: Engine;
  got: { channel: string; frame: StoredFrame }[];
  /** Ids delivered for a channel, in delivery order. */
  ids(channel: string): number[];
}

/** Polls until `done()` holds; fails naming `what` after `timeoutMs`. */
export async function waitFor(
  done: () => boolean,
  what: string,
  timeoutMs = 5000,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > until) throw new Error(`Timed out waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** A room message draft. */
export function message(room: string, text: string, username = "Alice"): Draft {
  return {
    type: "message",
    room,
    username,
    sender: username,
    message: text,
    timestamp: new Date().toISOString(),
  };
}

/** A private message draft from `from` to `to`. */
export function privateMessage(from: string, to: string, text: string): Draft {
  return {
    type: "private",
    room: "lobby",
    username: from,
    sender: from,
    to,
    message: text,
    timestamp: new Date().toISOString(),
  };
}

async function start(store: ContractStore, historyLimit = 1000): Promise<Started> {
  const engine = store.engine({ historyLimit });
  const got: Started["got"] = [];
  await engine.start((channel, frame) => got.push({ channel, frame }));
  return {
    engine,
    got,
    ids: (channel) => got.filter((d) => d.channel === channel).map((d) => d.frame.id),
  };
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

/** Registers the contract suite for one engine as one `Deno.test` with a step per rule. */
export function testEngineContract(subject: ContractSubject): void {
  Deno.test({
    name: `${subject.name} engine keeps the engine contract`,
    ignore: subject.ignore ?? false,
    async fn(t) {
      // A rule that does not apply to an engine (sharing, persistence) is not
      // registered at all, so no step shows as ignored.
      const step = async (
        name: string,
        fn: (store: ContractStore) => Promise<void>,
        notApplicable = false,
      ) => {
        if (notApplicable) return;
        await t.step(name, async () => {
          await using store = await subject.open();
          await fn(store);
        });
      };

      await step("ids start at 1 and increase strictly within each channel", async (store) => {
        const s = await start(store);
        await using _ = s.engine;
        const a = [];
        for (const text of ["one", "two", "three"]) {
          a.push(await s.engine.publish("alpha", message("alpha", text)));
        }
        const b = [await s.engine.publish("beta", message("beta", "x"))];
        assert.deepEqual(a.map((f) => f.id), [1, 2, 3]);
        assert.deepEqual(b.map((f) => f.id), [1]);
        const first = a[0]!;
        assert.equal(first.type, "message");
        assert.equal(first.type === "message" && first.message, "one");
        assert.equal(first.room, "alpha");
        assert.equal(s.engine.status(), "ok");
      });

      await step("concurrent publishes are delivered once each, in id order", async (store) => {
        const s = await start(store);
        await using _ = s.engine;
        s.engine.subscribe("room");
        const frames = await Promise.all(
          range(1, 50).map((i) => s.engine.publish("room", message("room", `m${i}`))),
        );
        assert.deepEqual(frames.map((f) => f.id).sort((x, y) => x - y), range(1, 50));
        // Each publish resolves with its own frame.
        frames.forEach((f, i) => assert.equal(f.type === "message" && f.message, `m${i + 1}`));
        await waitFor(() => s.ids("room").length >= 50, "50 deliveries");
        assert.deepEqual(s.ids("room"), range(1, 50));
        // After the burst the counter goes on from its top: an id handed out twice
        // (a counter read before the burst's writes landed) would show here.
        const after = [];
        for (const i of range(51, 53)) {
          after.push(await s.engine.publish("room", message("room", `m${i}`)));
        }
        assert.deepEqual(after.map((f) => f.id), range(51, 53));
        await waitFor(() => s.ids("room").length >= 53, "53 deliveries");
        assert.deepEqual(s.ids("room"), range(1, 53));
        const stored = await s.engine.history("room", { after: 0, limit: 100 });
        // One stored frame per publish, each the frame its publish resolved with.
        assert.deepEqual(stored.frames, [...frames, ...after].sort((x, y) => x.id - y.id));
      });

      await step("a frame is delivered before its publish resolves", async (store) => {
        const s = await start(store);
        await using _ = s.engine;
        s.engine.subscribe("room");
        const frame = await s.engine.publish("room", message("room", "ack"));
        assert.deepEqual(s.ids("room"), [frame.id]);
      });

      await step(
        "history serves the newest frames oldest first, paged by before",
        async (store) => {
          const s = await start(store);
          await using _ = s.engine;
          for (const i of range(1, 10)) await s.engine.publish("room", message("room", `m${i}`));
          const ids = async (q: { before?: number; limit: number }) =>
            (await s.engine.history("room", q)).frames.map((f) => f.id);
          assert.deepEqual(await ids({ limit: 3 }), [8, 9, 10]);
          assert.deepEqual(await ids({ before: 8, limit: 3 }), [5, 6, 7]);
          assert.deepEqual(await ids({ before: 2, limit: 5 }), [1]);
          assert.deepEqual(await ids({ before: 1, limit: 5 }), []);
          assert.deepEqual(await ids({ limit: 50 }), range(1, 10));
          assert.deepEqual((await s.engine.history("empty", { limit: 5 })).frames, []);
        },
      );

      await step(
        "history after an id returns what followed, in order, and is complete",
        async (store) => {
          const s = await start(store);
          await using _ = s.engine;
          for (const i of range(1, 8)) await s.engine.publish("room", message("room", `m${i}`));
          const page = await s.engine.history("room", { after: 5, limit: 100 });
          assert.deepEqual(page.frames.map((f) => f.id), [6, 7, 8]);
          assert.deepEqual(page.frames.map((f) => f.type === "message" && f.message), [
            "m6",
            "m7",
            "m8",
          ]);
          assert.equal(page.complete, true);
          assert.deepEqual(await s.engine.history("room", { after: 8, limit: 100 }), {
            frames: [],
            complete: true,
          });
          const zero = await s.engine.history("room", { after: 0, limit: 3 });
          assert.deepEqual(zero.frames.map((f) => f.id), [1, 2, 3]);
          assert.equal(zero.complete, true);
          const fresh = await s.engine.history("new room", { after: 0, limit: 3 });
          assert.deepEqual(fresh, { frames: [], complete: true });
        },
      );

      await step(
        "a gap past retention is incomplete and serves the retained tail",
        async (store) => {
          const s = await start(store, 5);
          await using _ = s.engine;
          for (const i of range(1, 12)) await s.engine.publish("room", message("room", `m${i}`));
          const gap = await s.engine.history("room", { after: 2, limit: 5 });
          assert.equal(gap.complete, false);
          assert.deepEqual(gap.frames.map((f) => f.id), range(8, 12));
          const edge = await s.engine.history("room", { after: 7, limit: 5 });
          assert.equal(edge.complete, true);
          assert.deepEqual(edge.frames.map((f) => f.id), range(8, 12));
          assert.deepEqual(
            (await s.engine.history("room", { limit: 50 })).frames.map((f) => f.id),
            [
              ...range(8, 12),
            ],
          );
          // An id the store never gave out: the store lost its data.
          const future = await s.engine.history("room", { after: 99, limit: 5 });
          assert.equal(future.complete, false);
          assert.deepEqual(future.frames, []);
        },
      );

      await step(
        "the history a welcome carries is the JSON of the stored frames, for every query",
        async (store) => {
          // Through the manager's own path: historyText spliced in where the engine has
          // it, history() serialised otherwise. Retention 5, 3 frames without `since`.
          const engine = store.engine({ historyLimit: 5 });
          await using manager = new ConnectionManager({
            engine,
            historyLimit: 5,
            historyOnJoin: 3,
          });
          await manager.ready();
          // Alice stays in the room, so her other tabs (a verified user's, as only those
          // share a name) announce nothing: every frame below is one of `published`.
          const alice = { username: "Alice", userId: "alice-id", room: "room" };
          const stay = new FakeSocket();
          manager.connect(stay, alice);
          // Her join notice (id 1) comes in the welcome's history or live after it.
          const notices = () =>
            stay.frames().flatMap((f) => f.type === "welcome" ? f.history as Frame[] : [f])
              .filter((f) => f.type === "system");
          await waitFor(() => notices().length >= 1, "Alice's join notice");
          const published: StoredFrame[] = [];
          for (const i of range(2, 12)) {
            const text = `m${i} $& "history":[] é \u2028`;
            published.push(await engine.publish("room", message("room", text)));
          }
          assert.deepEqual(published.map((f) => f.id), range(2, 12));
          const frames = (ids: number[]) => ids.map((id) => published.find((f) => f.id === id));
          const cases: { since?: number; ids: number[]; recovered: boolean }[] = [
            { ids: [10, 11, 12], recovered: true },
            { since: 2, ids: range(8, 12), recovered: false },
            { since: 7, ids: range(8, 12), recovered: true },
            { since: 9, ids: [10, 11, 12], recovered: true },
            { since: 12, ids: [], recovered: true },
            { since: 99, ids: [], recovered: false },
          ];
          for (const { since, ids, recovered } of cases) {
            const what = `since ${since}`;
            const socket = new FakeSocket();
            const tab = manager.connect(socket, { ...alice, since });
            await waitFor(() => socket.sent.length > 0, `the welcome, ${what}`);
            const welcome = socket.frames()[0]!;
            assert.equal(welcome.type, "welcome", what);
            assert.deepEqual(welcome.history, frames(ids), what);
            assert.equal(welcome.recovered, recovered, what);
            tab.closed(1000);
          }
          assert.equal(
            notices().length,
            1,
            "Alice got her join notice once, in the welcome or live",
          );
          // The API's paging reads history() with `before`; the same frames.
          const page = await engine.history("room", { before: 10, limit: 2 });
          assert.deepEqual(page.frames, frames([8, 9]));
          if (engine.historyText !== undefined) {
            const text = await engine.historyText("room", { before: 10, limit: 2 });
            assert.deepEqual(text.texts.map((t) => JSON.parse(t)), frames([8, 9]));
            assert.equal(text.lastId, 9);
          }
        },
      );

      await step("private frames reach either user's channel once, in order", async (store) => {
        const s = await start(store);
        await using _ = s.engine;
        s.engine.subscribe(userChannel("alice"));
        s.engine.subscribe(userChannel("bob"));
        const pair = privateChannel("alice", "bob");
        assert.equal(pair, privateChannel("bob", "alice"));
        const sent = [];
        for (const i of range(1, 3)) {
          const [from, to] = i % 2 === 0 ? ["Bob", "Alice"] : ["Alice", "Bob"];
          sent.push(await s.engine.publish(pair, privateMessage(from!, to!, `p${i}`)));
        }
        assert.deepEqual(sent.map((f) => f.id), [1, 2, 3]);
        await waitFor(() => s.ids(pair).length >= 3, "3 private deliveries");
        assert.deepEqual(s.ids(pair), [1, 2, 3]);
        const page = await s.engine.history(pair, { after: 0, limit: 10 });
        assert.deepEqual(page.frames.map((f) => f.type === "private" && f.message), [
          "p1",
          "p2",
          "p3",
        ]);
        // Pair channels count independently of rooms and of each other.
        const other = await s.engine.publish(
          privateChannel("alice", "carol"),
          privateMessage("Alice", "Carol", "hi"),
        );
        assert.equal(other.id, 1);
      });

      await step(
        "engines on one store share ids and deliver each other's frames once, in order",
        async (store) => {
          const a = await start(store);
          await using _a = a.engine;
          const b = await start(store);
          await using _b = b.engine;
          for (const s of [a, b]) {
            s.engine.subscribe("room");
            s.engine.subscribe(userChannel("bob"));
          }
          // The contract has no "subscribed" signal: a read and a pause let every
          // engine reach its store before the other one publishes.
          await Promise.all([a, b].map((s) => s.engine.history("room", { limit: 1 })));
          await new Promise((resolve) => setTimeout(resolve, 100));
          const frames = await Promise.all(
            range(1, 40).map((i) =>
              (i % 2 === 0 ? a : b).engine.publish("room", message("room", `m${i}`))
            ),
          );
          assert.deepEqual(frames.map((f) => f.id).sort((x, y) => x - y), range(1, 40));
          await waitFor(
            () => a.ids("room").length >= 40 && b.ids("room").length >= 40,
            "40 deliveries on both engines",
          );
          assert.deepEqual(a.ids("room"), range(1, 40));
          assert.deepEqual(b.ids("room"), range(1, 40));
          const pair = privateChannel("alice", "bob");
          await a.engine.publish(pair, privateMessage("Alice", "Bob", "psst"));
          await waitFor(() => b.ids(pair).length >= 1, "the private frame on the other engine");
          assert.deepEqual(b.ids(pair), [1]);
        },
        !subject.shared,
      );

      await step("a new engine on the store keeps the history and the ids", async (store) => {
        {
          const s = await start(store);
          await using _ = s.engine;
          for (const i of range(1, 3)) await s.engine.publish("room", message("room", `m${i}`));
        }
        const s = await start(store);
        await using _ = s.engine;
        const page = await s.engine.history("room", { after: 0, limit: 10 });
        assert.deepEqual(page.frames.map((f) => f.id), [1, 2, 3]);
        assert.equal((await s.engine.publish("room", message("room", "m4"))).id, 4);
      }, !subject.persistent);
    },
  });
}
