/**
 * Smoke test of the benchmark harness: a second of load at tiny scale
 * against the baseline and our server. It proves the harness works; it
 * asserts no timings.
 */

import assert from "node:assert/strict";
import type { LoadResult } from "../bench/load.ts";
import { measure, measureAlternating } from "../bench/measure.ts";
import { startLoad, startServer } from "../bench/processes.ts";
import { runScaleSuite, scaleTargets, SMALL_SCALE } from "../bench/scale_scenarios.ts";
import { type Section, serveWithRedis } from "../bench/scenarios.ts";
import { measureStorm } from "../bench/storm.ts";

Deno.test("the load generator counts deliveries from both servers", async (t) => {
  for (const kind of ["baseline", "ours"] as const) {
    await t.step(kind, async () => {
      const m = await measure({
        kind,
        load: { mode: "closed", clients: 4, window: 2 },
        seconds: 1,
        warmupMs: 200,
        settleMs: 100,
        pin: false,
      });
      assert.equal(m.kind, kind);
      assert.ok(m.deliveriesPerS > 0, `no deliveries: ${JSON.stringify(m)}`);
      assert.equal(m.errors, 0);
      assert.ok(m.latencySamples > 0);
      assert.ok(m.p50Ms > 0 && m.p99Ms >= m.p50Ms);
      assert.ok(m.cpuS >= 0);
      assert.ok(m.peakRssKb > 0 && m.rssLoadedKb > 0);
      // The baseline returns the client's frame as it is; ours adds id, room, names and time.
      const sentFrame = `{"type":"message","message":"${"x".repeat(64)}"}`.length;
      if (kind === "baseline") assert.equal(m.bytesPerDelivery, sentFrame);
      else assert.ok(m.bytesPerDelivery > sentFrame + 50, String(m.bytesPerDelivery));
    });
  }
  await t.step("ours with batched frames: each line is one delivery", async () => {
    const one = await measure({
      kind: "ours",
      load: { mode: "closed", clients: 4, window: 2 },
      seconds: 1,
      warmupMs: 200,
      settleMs: 100,
      pin: false,
    });
    const batched = await measure({
      kind: "ours",
      batch: true,
      load: { mode: "closed", clients: 4, window: 2 },
      seconds: 1,
      warmupMs: 200,
      settleMs: 100,
      pin: false,
    });
    assert.ok(batched.deliveriesPerS > 0 && batched.latencySamples > 0, JSON.stringify(batched));
    assert.equal(batched.errors, 0);
    // Counted per message, not per frame: the same size as unbatched, within a few digits of id.
    assert.ok(
      Math.abs(batched.bytesPerDelivery - one.bytesPerDelivery) < 8,
      `${batched.bytesPerDelivery} against ${one.bytesPerDelivery}`,
    );
  });
});

Deno.test("a load process reports its result as JSON of the documented shape", async () => {
  await using server = await startServer({ kind: "ours" });
  await using load = startLoad({
    base: server.base,
    path: "/ws/chat/{name}?room={room}",
    mode: "paced",
    clients: 3,
    rate: 200,
    ready: "welcome",
  });
  await load.ready;
  await load.send("run");
  await load.send("measure");
  await new Promise((resolve) => setTimeout(resolve, 1000));
  await load.send("stop");
  const result: LoadResult = await load.nextResult();
  assert.equal(result.event, "result");
  assert.equal(result.mode, "paced");
  assert.equal(result.clients, 3);
  assert.ok(result.seconds > 0.5);
  assert.ok(result.sent > 0);
  // Every message reaches all three clients (the sender included).
  assert.ok(result.deliveries > 0);
  assert.equal(result.errors, 0);
  for (const key of ["pings", "cycles", "connectMs"] as const) {
    assert.equal(typeof result[key], "number");
  }
  assert.ok(Array.isArray(result.latency.buckets) && result.latency.buckets.length > 0);
  assert.ok(result.latency.max > 0);
});

Deno.test("a paused load keeps its clients and sends nothing until run again", async (t) => {
  await using server = await startServer({ kind: "baseline" });
  for (const mode of ["paced", "closed"] as const) {
    await t.step(mode, async () => {
      await using load = startLoad({
        base: server.base,
        path: "/ws?room={room}",
        mode,
        clients: 3,
        rate: 300,
        window: 2,
      });
      await load.ready;
      const window = async (run: boolean) => {
        if (run) await load.send("run");
        await load.send("measure");
        await new Promise((resolve) => setTimeout(resolve, 400));
        await load.send("pause");
        return await load.nextResult();
      };
      const first = await window(true);
      assert.ok(first.sent > 0 && first.deliveries > 0, JSON.stringify(first));
      // Let what was in flight arrive, then count a window without `run`.
      await new Promise((resolve) => setTimeout(resolve, 100));
      const paused = await window(false);
      assert.equal(paused.sent, 0);
      assert.equal(paused.deliveries, 0);
      const resumed = await window(true);
      assert.ok(resumed.sent > 0 && resumed.deliveries > 0, JSON.stringify(resumed));
      // Counts start afresh with each `measure`.
      assert.ok(resumed.latency.buckets.reduce((n, [, c]) => n + c, 0) <= resumed.deliveries);
      await load.send("stop");
      assert.equal((await load.nextResult()).event, "result");
    });
  }
});

Deno.test("alternating windows measure both servers side by side", async () => {
  const windows: string[] = [];
  const pairs = await measureAlternating({
    pairs: 2,
    pin: false,
    rampMs: 50,
    build: (kind) => ({
      kind,
      load: { mode: "closed", clients: 3, window: 2 },
      seconds: 0.3,
      warmupMs: 100,
      settleMs: 50,
    }),
    onWindow: (m, i) => windows.push(`${i}:${m.kind}`),
  });
  // A warm-up pair (ours first) is measured and not reported; then the order flips every pair.
  assert.deepEqual(windows, ["0:baseline", "0:ours", "1:ours", "1:baseline"]);
  assert.deepEqual(pairs.ours.map((m) => m.kind), ["ours", "ours"]);
  assert.deepEqual(pairs.baseline.map((m) => m.kind), ["baseline", "baseline"]);
  for (const m of [...pairs.ours, ...pairs.baseline]) {
    assert.ok(m.deliveriesPerS > 0 && m.latencySamples > 0, JSON.stringify(m));
    assert.equal(m.errors, 0);
    assert.ok(m.cpuS >= 0 && m.peakRssKb > 0);
  }
});

Deno.test("a reconnect storm brings every client back with nothing lost or repeated", async (t) => {
  // Memory: the same process drops everyone (the scale test below restarts a kv server).
  for (const engine of ["memory"] as const) {
    await t.step(engine, async () => {
      const m = await measureStorm({
        engine,
        clients: 20,
        rooms: 2,
        rate: 40,
        beforeMs: 300,
        pin: false,
        withRedis: serveWithRedis,
      });
      assert.equal(m.notBack, 0, JSON.stringify(m));
      assert.ok(m.published > 0, JSON.stringify(m));
      assert.equal(m.expected, m.published * 10);
      assert.deepEqual(
        { lost: m.lost, duplicated: m.duplicated, repeated: m.repeatedIds, gaps: m.notRecovered },
        { lost: 0, duplicated: 0, repeated: 0, gaps: 0 },
        JSON.stringify(m),
      );
      // The page waits a second before its first attempt.
      assert.ok(m.allBackMs >= 1000 && m.welcomeP99Ms <= m.allBackMs, JSON.stringify(m));
    });
  }
});

Deno.test("churn clients join the room whose members stay", async () => {
  await using server = await startServer({ kind: "ours" });
  await using load = startLoad({
    base: server.base,
    path: "/ws/chat/{name}?room={room}",
    mode: "churn",
    clients: 2,
    churnRoom: "big",
    members: 30,
    ready: "welcome",
  });
  await load.ready;
  const rooms = async () =>
    (await (await fetch(`http://127.0.0.1:${server.port}/api/rooms`)).json()) as {
      rooms: { room: string; connected_count: number }[];
    };
  const before = await rooms();
  assert.deepEqual(before.rooms.map((r) => [r.room, r.connected_count]), [["big", 30]]);
  await load.send("run");
  await load.send("measure");
  // A joiner is seen in the room between its welcome and its close, and never in another room.
  let joined = false;
  for (let i = 0; i < 40 && !joined; i++) {
    const seen = await rooms();
    assert.deepEqual(seen.rooms.map((r) => r.room), ["big"]);
    joined = seen.rooms[0]!.connected_count > 30;
  }
  assert.ok(joined, "no joiner seen in the big room");
  await new Promise((resolve) => setTimeout(resolve, 300));
  await load.send("stop");
  const result = await load.nextResult();
  assert.ok(result.cycles > 0 && result.errors === 0, JSON.stringify(result));
});

Deno.test("the scale scenarios run at a tiny size and give their target lines", async () => {
  const sections: Section[] = [];
  await runScaleSuite({
    repeats: 1,
    runs: 1,
    seconds: 0.5,
    warmupS: 0.1,
    idleConnections: 0,
    slowRepeats: 1,
    churnRepeats: 1,
    pacedLoad: 0.5,
    pacedClients: [],
    maxOtherCpu: Infinity,
    retries: 0,
    retryUntil: 0,
    pin: false,
    // The big room's joiners are the churn test's above.
    only: ["storm", "idle15k", "shards"],
    log: () => {},
  }, {
    ...SMALL_SCALE,
    stormClients: 20,
    stormRooms: 2,
    stormEngines: ["kv"],
    bigRoomMembers: 30,
    idleConnections: 40,
    idleRooms: 2,
    chatSeconds: 0.5,
    shardMessages: 300,
    shardPresenceUsers: 300,
  }, sections);
  assert.deepEqual(sections.map((s) => s.id), ["storm", "idle15k", "shards"]);
  const lines = scaleTargets(sections);
  assert.equal(lines.length, 5, lines.join("\n"));
  assert.match(lines[0]!, /^- storm kv: all 20 back in \d+ ms .* lost 0, duplicated 0 ✓$/);
  for (const line of lines.slice(1)) assert.doesNotMatch(line, /NaN/, line);
  // One row per configuration: 1 and 3 Redis servers, with 1 and 2 processes subscribed.
  const shards = sections[2]!.markdown;
  assert.deepEqual([...shards.matchAll(/^\| (\d) \| (\d) \| \d/gm)].map((m) => m[1]! + m[2]!), [
    "11",
    "12",
    "31",
    "32",
  ]);
  assert.match(shards, /presence refresh: \d+\.\d µs .* per entry \(900 entries/);
  assert.doesNotMatch(shards, /NaN|Infinity/);
});
