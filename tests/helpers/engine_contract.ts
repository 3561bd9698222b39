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
import {
  type Draft,
  type Engine,
  type HistoryQuery,
  privateChannel,
  userChannel,
} from "../../chat/engines/engine.ts";
import type { StoredFrame } from "../../chat/protocol.ts";

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
        "history as text, where an engine has it, is the JSON of the same frames",
        async (store) => {
          const s = await start(store, 5);
          await using _ = s.engine;
          const historyText = s.engine.historyText?.bind(s.engine);
          if (historyText === undefined) return;
          for (const i of range(1, 12)) {
            await s.engine.publish("room", message("room", `m${i} $& "history":[] é`));
          }
          const queries: HistoryQuery[] = [
            { limit: 3 },
            { limit: 50 },
            { after: 2, limit: 5 },
            { after: 9, limit: 2 },
            { after: 12, limit: 5 },
            { after: 99, limit: 5 },
            { before: 10, limit: 2 },
          ];
          for (const query of queries) {
            const page = await s.engine.history("room", query);
            const text = await historyText("room", query);
            const what = JSON.stringify(query);
            assert.deepEqual(text.texts.map((t) => JSON.parse(t)), page.frames, what);
            assert.equal(text.lastId, page.frames.at(-1)?.id ?? 0, what);
            assert.equal(text.complete, page.complete, what);
          }
          assert.deepEqual(await historyText("nowhere", { after: 0, limit: 3 }), {
            texts: [],
            lastId: 0,
            complete: true,
          });
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
