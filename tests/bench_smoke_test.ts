/**
 * Smoke test of the benchmark harness: a second of load at tiny scale
 * against the baseline and our server. It proves the harness works; it
 * asserts no timings.
 */

import assert from "node:assert/strict";
import type { LoadResult } from "../bench/load.ts";
import { measure } from "../bench/measure.ts";
import { startLoad, startServer } from "../bench/processes.ts";

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
    });
  }
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
  const result: LoadResult = await load.result;
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
