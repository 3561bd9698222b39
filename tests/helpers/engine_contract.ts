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
import type { Engine, StreamPosition } from "../../chat/engines/engine.ts";
import { userChannel } from "../../chat/engines/engine.ts";
import type { Draft } from "../../chat/protocol.ts";
import { ConnectionManager } from "../../chat/connection_manager.ts";
import { stampId } from "../../chat/publisher.ts";
import { eventually } from "./eventually.ts";
import { FakeClock, FakeScheduler, FakeSocket, type Frame, settle } from "./fakes.ts";

/** A fresh, empty store on which a step opens engines. */
export interface ContractStore extends AsyncDisposable {
  /** A new, unstarted engine on this store; every engine of a store shares its data. */
  engine(options: EngineSpec): Engine;
}

/** What a contract step asks of an engine; unset fields take the engine's defaults. */
export interface EngineSpec {
  /** Publications kept per channel. */
  historyLimit: number;
  /** Bytes of payloads kept in the whole store. */
  historyMaxBytes?: number;
  /** Seconds after its last publication a channel is deleted. */
  roomTtlS?: number;
  /** Seconds a publication is served from history. */
  historyTtlS?: number;
  /** The engine's clock. */
  clock?: FakeClock;
  /** The engine's timers; they run only when the step advances them. */
  scheduler?: FakeScheduler;
}

/** An engine under test. */
export interface ContractSubject {
  /** The engine's name, for test names. */
  name: string;
  /** Opens a fresh, empty store; the step disposes it. */
  open(): Promise<ContractStore>;
  /** Whether two engines on one store deliver each other's publications (as processes would). */
  shared: boolean;
  /** Whether a new engine on the store sees what a disposed one stored (and keeps its epoch). */
  persistent: boolean;
  /** Skips the suite; say why in the name or a message. Default false. */
  ignore?: boolean;
}

/** One delivery as the engine made it. */
export interface Delivered {
  channel: string;
  payload: string;
  offset: number | undefined;
}

/** A started engine and what it delivered. */
export interface Started {
  engine: Engine;
  got: Delivered[];
  /** Offsets delivered for a channel, in delivery order (ephemeral ones as undefined). */
  offsets(channel: string): (number | undefined)[];
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

/** A room message's payload: its JSON without an id, as the manager publishes it. */
export function payload(room: string, text: string, username = "Alice"): string {
  return JSON.stringify(message(room, text, username));
}

/** Publishes with history and returns the position, which a stored publish always has. */
export async function store(
  engine: Engine,
  channel: string,
  text: string,
): Promise<StreamPosition> {
  const position = await engine.publish(channel, text, { history: true });
  assert.ok(position !== undefined, "a stored publish resolves with its position");
  return position;
}

/** Starts an engine that records its deliveries. */
export async function startRecorded(engine: Engine): Promise<Started> {
  const got: Delivered[] = [];
  await engine.start((channel, payload, offset) => got.push({ channel, payload, offset }));
  return {
    engine,
    got,
    offsets: (channel) => got.filter((d) => d.channel === channel).map((d) => d.offset),
  };
}

/** Numbers from `from` to `to`, both included. */
export function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

/** Text that must travel byte for byte: unicode, a line separator, replacement patterns. */
const TRICKY = 'é 日本 😀 \u2028 \u2029 $& $1 $$ "history":[] \\ "quoted"';

type Step = (name: string, fn: (store: ContractStore) => Promise<void>, skip?: boolean) => Promise<
  void
>;

/** Registers the contract suite for one engine as one `Deno.test` with a step per rule. */
export function testEngineContract(subject: ContractSubject): void {
  Deno.test({
    name: `${subject.name} engine keeps the engine contract`,
    ignore: subject.ignore ?? false,
    async fn(t) {
      // A rule that does not apply to an engine (sharing, persistence) is not
      // registered at all, so no step shows as ignored.
      const step: Step = async (name, fn, notApplicable = false) => {
        if (notApplicable) return;
        await t.step(name, async () => {
          await using store = await subject.open();
          await fn(store);
        });
      };
      await publishing(step);
      await passing(step);
      await reading(step);
      await retention(step);
      await bounds(step);
      await expiry(step);
      await throughManager(step);
      await across(step, subject);
      await restarts(step, subject);
    },
  });
}

async function publishing(step: Step): Promise<void> {
  await step("stored publishes get offsets 1, 2, 3 per channel and the epoch", async (s) => {
    const { engine } = await startRecorded(s.engine({ historyLimit: 1000 }));
    await using _ = engine;
    const a = [];
    for (const text of ["one", "two", "three"]) {
      a.push(await store(engine, "alpha", payload("alpha", text)));
    }
    const b = await store(engine, "beta", payload("beta", "x"));
    assert.deepEqual(a.map((p) => p.offset), [1, 2, 3]);
    assert.equal(b.offset, 1);
    assert.ok(engine.epoch.length > 0);
    for (const p of [...a, b]) assert.equal(p.epoch, engine.epoch);
    assert.equal(engine.status(), "ok");
  });

  await step("concurrent publishes are delivered once each, in offset order", async (s) => {
    const r = await startRecorded(s.engine({ historyLimit: 1000 }));
    await using _ = r.engine;
    r.engine.subscribe("room");
    const texts = range(1, 50).map((i) => payload("room", `m${i}`));
    const positions = await Promise.all(texts.map((t) => store(r.engine, "room", t)));
    assert.deepEqual(positions.map((p) => p.offset).sort((x, y) => x - y), range(1, 50));
    await eventually("50 deliveries", () => r.offsets("room").length >= 50);
    assert.deepEqual(r.offsets("room"), range(1, 50));
    // Each delivery carries the payload its publish got the offset for.
    for (const d of r.got) {
      assert.equal(
        d.payload,
        texts[positions.findIndex((p) => p.offset === d.offset)],
      );
    }
    // After the burst the counter goes on from its top.
    assert.equal((await store(r.engine, "room", payload("room", "m51"))).offset, 51);
    const stored = await r.engine.history("room", { after: 0, limit: 100 });
    assert.deepEqual(stored.publications.map((p) => p.offset), range(1, 51));
    assert.deepEqual(stored.position, { offset: 51, epoch: r.engine.epoch });
  });

  await step("a publication is delivered before its publish resolves", async (s) => {
    const r = await startRecorded(s.engine({ historyLimit: 1000 }));
    await using _ = r.engine;
    r.engine.subscribe("room");
    const position = await store(r.engine, "room", payload("room", "ack"));
    assert.deepEqual(r.offsets("room"), [position.offset]);
  });
}

async function passing(step: Step): Promise<void> {
  await step("an ephemeral publish is delivered, takes no offset and is not stored", async (s) => {
    const r = await startRecorded(s.engine({ historyLimit: 1000 }));
    await using _ = r.engine;
    r.engine.subscribe("room");
    r.engine.subscribe(userChannel("bob"));
    await r.engine.history("room", { limit: 1 });
    assert.equal(await r.engine.publish("room", '{"type":"typing"}'), undefined);
    assert.equal(
      await r.engine.publish(userChannel("bob"), '{"id":7}', { history: false }),
      undefined,
    );
    await eventually("both ephemeral deliveries", () => r.got.length >= 2);
    assert.deepEqual(r.got, [
      { channel: "room", payload: '{"type":"typing"}', offset: undefined },
      { channel: userChannel("bob"), payload: '{"id":7}', offset: undefined },
    ]);
    const page = await r.engine.history("room", { after: 0, limit: 10 });
    assert.deepEqual(page.publications, []);
    assert.equal(page.position.offset, 0);
    assert.equal((await store(r.engine, "room", payload("room", "first"))).offset, 1);
  });

  await step("an ephemeral publish right after a subscribe reaches this process", async (s) => {
    // A join notice is published as its room is subscribed to: the joiner is a member too.
    const r = await startRecorded(s.engine({ historyLimit: 1000 }));
    await using _ = r.engine;
    r.engine.subscribe("fresh");
    assert.equal(await r.engine.publish("fresh", '{"type":"system"}'), undefined);
    await eventually("the ephemeral delivery", () => r.got.length >= 1);
    assert.deepEqual(r.got, [{
      channel: "fresh",
      payload: '{"type":"system"}',
      offset: undefined,
    }]);
  });

  await step("payloads travel byte for byte, live and from history", async (s) => {
    const r = await startRecorded(s.engine({ historyLimit: 1000 }));
    await using _ = r.engine;
    r.engine.subscribe("room");
    const text = payload("room", TRICKY);
    await store(r.engine, "room", text);
    await r.engine.publish("room", text);
    await eventually("both deliveries", () => r.got.length >= 2);
    assert.deepEqual(r.got.map((d) => d.payload), [text, text]);
    const page = await r.engine.history("room", { limit: 5 });
    assert.deepEqual(page.publications, [{ offset: 1, payload: text }]);
  });
}

async function reading(step: Step): Promise<void> {
  await step("history serves the newest publications oldest first, paged by before", async (s) => {
    const { engine } = await startRecorded(s.engine({ historyLimit: 1000 }));
    await using _ = engine;
    for (const i of range(1, 10)) await store(engine, "room", payload("room", `m${i}`));
    const offsets = async (q: { before?: number; limit: number }) =>
      (await engine.history("room", q)).publications.map((p) => p.offset);
    assert.deepEqual(await offsets({ limit: 3 }), [8, 9, 10]);
    assert.deepEqual(await offsets({ before: 8, limit: 3 }), [5, 6, 7]);
    assert.deepEqual(await offsets({ before: 2, limit: 5 }), [1]);
    assert.deepEqual(await offsets({ before: 1, limit: 5 }), []);
    assert.deepEqual(await offsets({ limit: 50 }), range(1, 10));
    const empty = await engine.history("empty", { limit: 5 });
    assert.deepEqual(empty, {
      publications: [],
      position: { offset: 0, epoch: engine.epoch },
      complete: true,
    });
  });

  await step(
    "history after an offset returns what followed, in order, and is complete",
    async (s) => {
      const { engine } = await startRecorded(s.engine({ historyLimit: 1000 }));
      await using _ = engine;
      for (const i of range(1, 8)) await store(engine, "room", payload("room", `m${i}`));
      const page = await engine.history("room", { after: 5, limit: 100 });
      assert.deepEqual(page.publications.map((p) => JSON.parse(p.payload).message), [
        "m6",
        "m7",
        "m8",
      ]);
      assert.deepEqual(page.publications.map((p) => p.offset), [6, 7, 8]);
      assert.equal(page.complete, true);
      assert.deepEqual(page.position, { offset: 8, epoch: engine.epoch });
      const top = await engine.history("room", { after: 8, limit: 100 });
      assert.deepEqual([top.publications, top.complete], [[], true]);
      const zero = await engine.history("room", { after: 0, limit: 3 });
      assert.deepEqual([zero.publications.map((p) => p.offset), zero.complete], [[1, 2, 3], true]);
      const fresh = await engine.history("new room", { after: 0, limit: 3 });
      assert.deepEqual([fresh.publications, fresh.complete], [[], true]);
    },
  );
}

async function retention(step: Step): Promise<void> {
  await step("a gap past retention is incomplete and serves the retained tail", async (s) => {
    const { engine } = await startRecorded(s.engine({ historyLimit: 5 }));
    await using _ = engine;
    for (const i of range(1, 12)) await store(engine, "room", payload("room", `m${i}`));
    const gap = await engine.history("room", { after: 2, limit: 5 });
    assert.equal(gap.complete, false);
    assert.deepEqual(gap.publications.map((p) => p.offset), range(8, 12));
    const edge = await engine.history("room", { after: 7, limit: 5 });
    assert.equal(edge.complete, true);
    assert.deepEqual(edge.publications.map((p) => p.offset), range(8, 12));
    const all = await engine.history("room", { limit: 50 });
    assert.deepEqual(all.publications.map((p) => p.offset), range(8, 12));
    // An offset the store never gave out: the store lost its data.
    const future = await engine.history("room", { after: 99, limit: 5 });
    assert.deepEqual([future.publications, future.complete], [[], false]);
  });
}

async function throughManager(step: Step): Promise<void> {
  await step(
    "a welcome carries the stored payloads stamped with their ids, for every query",
    async (s) => {
      // Retention 5, 3 frames without `since`.
      const engine = s.engine({ historyLimit: 5 });
      await using manager = new ConnectionManager({ engine, historyLimit: 5, historyOnJoin: 3 });
      await manager.ready();
      // Alice stays in the room, so her other tabs (a verified user's, as only those
      // share a name) announce nothing: every frame below is one of `published`.
      const alice = { username: "Alice", userId: "alice-id", room: "room" };
      const stay = new FakeSocket();
      manager.connect(stay, alice);
      const notices = () =>
        stay.frames().flatMap((f) => f.type === "welcome" ? f.history as Frame[] : [f])
          .filter((f) => f.type === "system");
      await eventually("Alice's join notice", () => notices().length >= 1);
      const texts = new Map<number, string>();
      // The join notice is live only: the stored frames are these, from offset 1.
      for (const i of range(1, 12)) {
        const text = payload("room", `m${i} ${TRICKY}`);
        texts.set((await store(engine, "room", text)).offset, text);
      }
      assert.deepEqual([...texts.keys()], range(1, 12));
      const frames = (ids: number[]) => ids.map((id) => JSON.parse(stampId(id, texts.get(id)!)));
      const other = "another-epoch";
      const cases: { since?: number; epoch?: string; ids: number[]; recovered: boolean }[] = [
        { ids: [10, 11, 12], recovered: true },
        { since: 2, ids: range(8, 12), recovered: false },
        { since: 7, ids: range(8, 12), recovered: true },
        { since: 9, epoch: engine.epoch, ids: [10, 11, 12], recovered: true },
        { since: 12, ids: [], recovered: true },
        { since: 99, ids: [], recovered: false },
        // Offsets of another epoch recover nothing: the recent tail instead.
        { since: 9, epoch: other, ids: [10, 11, 12], recovered: false },
      ];
      for (const { since, epoch, ids, recovered } of cases) {
        const what = `since ${since} epoch ${epoch}`;
        const socket = new FakeSocket();
        const tab = manager.connect(socket, { ...alice, since, epoch });
        await eventually(`the welcome, ${what}`, () => socket.sent.length > 0);
        const welcome = socket.frames()[0]!;
        assert.equal(welcome.type, "welcome", what);
        assert.deepEqual(welcome.history, frames(ids), what);
        assert.equal(welcome.recovered, recovered, what);
        assert.equal(welcome.epoch, engine.epoch, what);
        tab.closed(1000);
      }
      assert.equal(notices().length, 1, "Alice got her join notice once, live");
      // The API's paging reads the manager's history with `before`; the same frames.
      assert.deepEqual(await manager.history("room", { before: 10, limit: 2 }), frames([8, 9]));
    },
  );
}

async function across(step: Step, subject: ContractSubject): Promise<void> {
  await step(
    "engines on one store share offsets and deliver each other's publications once, in order",
    async (s) => {
      const a = await startRecorded(s.engine({ historyLimit: 1000 }));
      await using _a = a.engine;
      const b = await startRecorded(s.engine({ historyLimit: 1000 }));
      await using _b = b.engine;
      for (const r of [a, b]) {
        r.engine.subscribe("room");
        r.engine.subscribe(userChannel("bob"));
      }
      assert.equal(a.engine.epoch, b.engine.epoch);
      // The contract has no "subscribed" signal: a read and a pause let every
      // engine reach its store before the other one publishes.
      await Promise.all([a, b].map((r) => r.engine.history("room", { limit: 1 })));
      await new Promise((resolve) => setTimeout(resolve, 100));
      const positions = await Promise.all(
        range(1, 40).map((i) =>
          store((i % 2 === 0 ? a : b).engine, "room", payload("room", `m${i}`))
        ),
      );
      assert.deepEqual(positions.map((p) => p.offset).sort((x, y) => x - y), range(1, 40));
      await eventually(
        "40 deliveries on both engines",
        () => a.offsets("room").length >= 40 && b.offsets("room").length >= 40,
      );
      assert.deepEqual(a.offsets("room"), range(1, 40));
      assert.deepEqual(b.offsets("room"), range(1, 40));
      await a.engine.publish(userChannel("bob"), '{"id":1,"type":"private"}');
      await eventually(
        "the ephemeral publication on the other engine",
        () => b.offsets(userChannel("bob")).length >= 1,
      );
      assert.deepEqual(b.got.filter((d) => d.channel === userChannel("bob")), [
        { channel: userChannel("bob"), payload: '{"id":1,"type":"private"}', offset: undefined },
      ]);
    },
    !subject.shared,
  );

  await step(
    "stored publishes to a user channel from two engines reach its subscriber once each, in offset order",
    async (s) => {
      // Private deliveries are stored on user channels: the engine that
      // holds the user follows them like a room, whoever publishes.
      const a = await startRecorded(s.engine({ historyLimit: 1000 }));
      await using _a = a.engine;
      const b = await startRecorded(s.engine({ historyLimit: 1000 }));
      await using _b = b.engine;
      const bob = userChannel("bob");
      b.engine.subscribe(bob);
      await b.engine.history(bob, { limit: 1 });
      await new Promise((resolve) => setTimeout(resolve, 100));
      const texts = range(1, 30).map((i) => `{"id":${i},"type":"private"}`);
      const positions = await Promise.all(
        texts.map((text, i) => store((i % 2 === 0 ? a : b).engine, bob, text)),
      );
      assert.deepEqual(positions.map((p) => p.offset).sort((x, y) => x - y), range(1, 30));
      await eventually("30 deliveries to bob", () => b.offsets(bob).length >= 30);
      assert.deepEqual(b.offsets(bob), range(1, 30));
      for (const d of b.got.filter((g) => g.channel === bob)) {
        assert.equal(d.payload, texts[positions.findIndex((p) => p.offset === d.offset)]);
      }
      assert.equal(a.offsets(bob).length, 0, "a did not subscribe to bob");
    },
    !subject.shared,
  );
}

async function restarts(step: Step, subject: ContractSubject): Promise<void> {
  await step(
    "a new engine on the store keeps the history, the offsets and the epoch",
    async (s) => {
      let epoch;
      {
        const { engine } = await startRecorded(s.engine({ historyLimit: 1000 }));
        await using _ = engine;
        for (const i of range(1, 3)) await store(engine, "room", payload("room", `m${i}`));
        epoch = engine.epoch;
      }
      const { engine } = await startRecorded(s.engine({ historyLimit: 1000 }));
      await using _ = engine;
      assert.equal(engine.epoch, epoch);
      const page = await engine.history("room", { after: 0, limit: 10 });
      assert.deepEqual(page.publications.map((p) => p.offset), [1, 2, 3]);
      assert.deepEqual(await store(engine, "room", payload("room", "m4")), { offset: 4, epoch });
    },
    !subject.persistent,
  );

  await step("a new engine without the old one's data has a new epoch", async (s) => {
    const first = s.engine({ historyLimit: 1000 });
    await first.start(() => {});
    const old = first.epoch;
    await first[Symbol.asyncDispose]();
    const { engine } = await startRecorded(s.engine({ historyLimit: 1000 }));
    await using _ = engine;
    assert.notEqual(engine.epoch, old);
    assert.deepEqual((await engine.history("room", { after: 0, limit: 10 })).publications, []);
  }, subject.persistent);
}

/** The UTF-8 length of a payload, as engines count stored bytes. */
function byteLength(text: string): number {
  return new TextEncoder().encode(text).length;
}

async function bounds(step: Step): Promise<void> {
  await step(
    "stored bytes stay within historyMaxBytes: the least recently active channel loses its oldest",
    async (s) => {
      const clock = new FakeClock(Date.now());
      const scheduler = new FakeScheduler(clock);
      // One timestamp, so a payload built again for a comparison is byte for byte the stored one.
      const at = new Date(clock.time).toISOString();
      const body = (room: string, i: number) =>
        JSON.stringify({ ...message(room, `m${i}`.padEnd(150, ".")), timestamp: at });
      const size = byteLength(body("a", 1));
      // Room for 20 of the 25 publications below.
      const max = size * 20 + 10;
      const engine = s.engine({ historyLimit: 1000, historyMaxBytes: max, clock, scheduler });
      await using _ = engine;
      await engine.start(() => {});
      const publish = async (room: string, i: number) => {
        clock.time += 1000;
        await store(engine, room, body(room, i));
      };
      for (const i of range(1, 8)) await publish("a", i);
      for (const i of range(1, 8)) await publish("b", i);
      // "a" is now more recent than "b".
      await publish("a", 9);
      for (const i of range(1, 8)) await publish("c", i);
      await eventually("stored bytes within the budget", () => engine.stats().storedBytes <= max);
      assert.ok(engine.stats().evictions >= 5, `evictions: ${engine.stats().evictions}`);
      const a = await engine.history("a", { after: 0, limit: 100 });
      assert.deepEqual(a.publications.map((p) => p.offset), range(1, 9));
      assert.equal(a.complete, true);
      const c = await engine.history("c", { after: 0, limit: 100 });
      assert.deepEqual(c.publications.map((p) => p.offset), range(1, 8));
      const b = await engine.history("b", { after: 0, limit: 100 });
      const kept = b.publications.map((p) => p.offset);
      assert.ok(kept.length <= 3, `b keeps its newest at most: ${kept}`);
      assert.deepEqual(kept, range(9 - kept.length, 8));
      assert.equal(b.complete, false);
      for (const p of b.publications) assert.equal(p.payload, body("b", p.offset));
      // Eviction drops publications, not the channel's counter.
      assert.equal(b.position.offset, 8);
      assert.equal((await store(engine, "b", body("b", 9))).offset, 9);
    },
  );
}

async function expiry(step: Step): Promise<void> {
  await step("publications older than historyTtlS are not served (fake time)", async (s) => {
    const clock = new FakeClock(Date.now());
    const scheduler = new FakeScheduler(clock);
    const engine = s.engine({ historyLimit: 1000, historyTtlS: 60, clock, scheduler });
    await using _ = engine;
    await engine.start(() => {});
    await store(engine, "room", payload("room", "old 1"));
    await store(engine, "room", payload("room", "old 2"));
    clock.time += 90_000;
    await store(engine, "room", payload("room", "new"));
    const after = await engine.history("room", { after: 0, limit: 10 });
    assert.deepEqual(after.publications.map((p) => p.offset), [3]);
    assert.equal(after.complete, false);
    const recent = await engine.history("room", { limit: 10 });
    assert.deepEqual(recent.publications.map((p) => p.offset), [3]);
  });

  await step(
    "a channel with no publication for roomTtlS is deleted whole; an active one is kept",
    async (s) => {
      const clock = new FakeClock(Date.now());
      const scheduler = new FakeScheduler(clock);
      const engine = s.engine({ historyLimit: 1000, roomTtlS: 60, clock, scheduler });
      await using _ = engine;
      await engine.start(() => {});
      for (const i of range(1, 3)) await store(engine, "old", payload("old", `o${i}`));
      await store(engine, userChannel("old"), payload("old", "to a user"));
      scheduler.advance(40_000);
      for (const i of range(1, 2)) await store(engine, "kept", payload("kept", `k${i}`));
      // "old" is 80 s past its last publication, "kept" 40 s.
      for (let n = 0; n < 40; n++) {
        scheduler.advance(1000);
        await settle();
      }
      await eventually("the idle channels are deleted", async () => {
        const page = await engine.history("old", { limit: 10 });
        const user = await engine.history(userChannel("old"), { limit: 10 });
        return page.position.offset === 0 && user.position.offset === 0;
      });
      assert.ok(engine.stats().expiredChannels >= 2, `expired: ${engine.stats().expiredChannels}`);
      const kept = await engine.history("kept", { after: 0, limit: 10 });
      assert.deepEqual(kept.publications.map((p) => p.offset), [1, 2]);
      // A `since` from before the deletion recovers nothing and says so.
      const stale = await engine.history("old", { after: 3, limit: 10 });
      assert.deepEqual(stale.publications, []);
      assert.equal(stale.complete, false);
      // The channel starts again.
      assert.equal((await store(engine, "old", payload("old", "again"))).offset, 1);
    },
  );
}
