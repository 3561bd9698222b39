import assert from "node:assert/strict";
import { EventLoopLag } from "../chat/event_loop_lag.ts";
import { eventually } from "./helpers/eventually.ts";
import { FakeClock, FakeScheduler, type Frame } from "./helpers/fakes.ts";
import { startServer } from "./helpers/app_server.ts";
import { TestClient } from "./helpers/ws_client.ts";

const RELAXED = {
  HANDSHAKES_PER_IP_PER_MIN: "10000",
  MAX_CONNECTIONS_PER_IP: "1000",
};

const welcome = (f: Frame) => f.type === "welcome";

/** Parses the Prometheus text format into `name{labels}` -> value. */
function parseMetrics(body: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of body.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const space = line.lastIndexOf(" ");
    samples.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return samples;
}

async function scrape(url: string, token?: string): Promise<Map<string, number>> {
  const headers = token === undefined ? undefined : { authorization: `Bearer ${token}` };
  const response = await fetch(url, { headers });
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  return parseMetrics(await response.text());
}

Deno.test("/metrics exposes every metric of issue 6 with plausible values", async () => {
  await using server = await startServer({
    ...RELAXED,
    RATE_LIMIT_PER_S: "1",
    RATE_LIMIT_BURST: "20",
    HEARTBEAT_INTERVAL_MS: "100",
    HEARTBEAT_TIMEOUT_MS: "300",
  });
  await using alice = await TestClient.connect(server.url("/ws/chat/Alice"));
  await using bob = await TestClient.connect(server.url("/ws/chat/Bob"));
  await alice.next(welcome);
  await bob.next(welcome);
  const fromAlice = (f: Frame) => f.type === "message" && f.username === "Alice";
  // Every fan-out happens between the first send and Bob's fifth message, one at a time.
  const sending = performance.now();
  for (let i = 0; i < 5; i++) alice.sendJson({ type: "message", message: `hello ${i}` });
  await eventually("Alice's 5 messages", () => bob.frames.filter(fromAlice).length === 5);
  const fanoutWindow = (performance.now() - sending) / 1000;
  alice.send("{not json");
  await alice.next((f) => f.type === "error" && f.code === "bad_json");

  // A flood: burst 20 at 1/s, so rate_limited errors, then close 1008.
  await using flooder = await TestClient.connect(server.url("/ws/chat/Flooder"));
  await flooder.next(welcome);
  for (let i = 0; i < 60; i++) flooder.sendJson({ type: "heartbeat" });
  assert.equal((await flooder.closed).code, 1008);

  // A heartbeat client that never answers is closed with 4000.
  await using silent = await TestClient.connect(server.url("/ws/chat/Silent/heartbeat"));
  assert.equal((await silent.closed).code, 4000);
  await eventually("2 left", () => server.app.manager.connectionCount === 2);

  const m = await scrape(server.httpUrl("/metrics"));
  const get = (name: string) => {
    const value = m.get(name);
    assert.notEqual(value, undefined, `missing metric: ${name}`);
    return value!;
  };
  assert.equal(get("chat_connections"), 2);
  assert.equal(get("chat_rooms"), 1);
  assert.equal(get("chat_connections_total"), 4);
  // 5 messages, bad JSON and the 41 flood frames up to the close.
  assert.ok(get("chat_frames_in_total") >= 47);
  assert.ok(get("chat_bytes_in_total") > get("chat_frames_in_total"));
  assert.ok(get("chat_frames_out_total") >= 10);
  assert.ok(get("chat_bytes_out_total") > get("chat_frames_out_total"));
  // 5 messages and the join notices, at least 2 copies of each message.
  assert.ok(get("chat_messages_broadcast_total") >= 5);
  assert.ok(get("chat_deliveries_total") >= 10);
  assert.equal(get(`chat_errors_total{code="bad_json"}`), 1);
  assert.ok(get(`chat_errors_total{code="rate_limited"}`) >= 1);
  assert.equal(get(`chat_closes_total{code="1008"}`), 1);
  assert.equal(get(`chat_closes_total{code="4000"}`), 1);
  assert.ok(get("chat_rate_limited_total") >= 21);
  assert.equal(get("chat_slow_consumer_closes_total"), 0);
  assert.equal(get("chat_heartbeat_timeouts_total"), 1);

  // The histogram: one observation per chat message (not per notice or heartbeat), in
  // seconds: more than nothing, and no more than the time the five fan-outs had.
  const count = get("chat_fanout_seconds_count");
  assert.equal(count, 5);
  assert.equal(get(`chat_fanout_seconds_bucket{le="+Inf"}`), count);
  const sum = get("chat_fanout_seconds_sum");
  assert.ok(sum > 0, `fan-out sum ${sum} s`);
  assert.ok(sum <= fanoutWindow, `fan-out sum ${sum} s in a window of ${fanoutWindow} s`);
  const buckets = [...m].filter(([k]) => k.startsWith("chat_fanout_seconds_bucket"));
  assert.ok(buckets.length >= 5);
  for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i]![1] >= buckets[i - 1]![1]);
  // The smallest bucket that holds all five bounds the sum from above as well.
  const le = Number(/le="([^"]+)"/.exec(buckets.find(([, v]) => v === count)![0])![1]);
  assert.ok(sum <= count * le, `fan-out sum ${sum} s, yet every observation <= ${le} s`);
});

Deno.test("METRICS_TOKEN protects /metrics", async () => {
  await using server = await startServer({ ...RELAXED, METRICS_TOKEN: "scrape-me" });
  const url = server.httpUrl("/metrics");
  for (const authorization of [undefined, "Bearer wrong", "Basic scrape-me", "Bearer scrape-me2"]) {
    const response = await fetch(url, authorization ? { headers: { authorization } } : {});
    assert.equal(response.status, 401, `authorization: ${authorization}`);
    assert.equal(response.headers.get("www-authenticate"), "Bearer");
    assert.doesNotMatch(await response.text(), /chat_/);
  }
  const metrics = await scrape(url, "scrape-me");
  assert.equal(metrics.get("chat_connections"), 0);
});

/** Checks the exposition format: names in snake_case, every sample under its own HELP and TYPE. */
function assertExposition(body: string): void {
  const typed = new Map<string, string>();
  const helped = new Set<string>();
  for (const line of body.trimEnd().split("\n")) {
    const meta = /^# (HELP|TYPE) ([a-z_][a-z0-9_]*) (.+)$/.exec(line);
    if (meta !== null) {
      if (meta[1] === "HELP") helped.add(meta[2]!);
      else typed.set(meta[2]!, meta[3]!);
      continue;
    }
    const sample = /^([a-z_][a-z0-9_]*)(\{[a-z_]+="[^"\n]*"(,[a-z_]+="[^"\n]*")*\})? (\S+)$/
      .exec(line);
    assert.ok(sample, `not a sample line: ${line}`);
    assert.ok(!Number.isNaN(Number(sample[4])), `not a number: ${line}`);
    const name = sample[1]!;
    const family = typed.get(name) === undefined ? name.replace(/_(bucket|sum|count)$/, "") : name;
    assert.ok(typed.has(family) && helped.has(family), `a sample without HELP and TYPE: ${line}`);
  }
}

Deno.test("/metrics shows the process's memory, event loop lag and build", async () => {
  await using server = await startServer(RELAXED);
  const response = await fetch(server.httpUrl("/metrics"));
  const body = await response.text();
  assertExposition(body);
  for (const family of ["process_resident_memory_bytes", "deno_heap_used_bytes"]) {
    assert.match(body, new RegExp(`^# TYPE ${family} gauge$`, "m"));
  }
  const m = parseMetrics(body);
  const rss = m.get("process_resident_memory_bytes") ?? NaN;
  const heap = m.get("deno_heap_used_bytes") ?? NaN;
  // A Deno process is tens of MB resident, a few of them heap.
  assert.ok(rss > 10_000_000 && rss < 16e9, `resident ${rss} bytes`);
  assert.ok(heap > 100_000 && heap < rss, `heap ${heap} of ${rss} bytes`);
  const lag = m.get("chat_event_loop_lag_seconds") ?? NaN;
  assert.ok(lag >= 0 && lag < 10, `event loop lag ${lag} s`);
  // The version is deno.json's, the runtime's is the one running the test.
  const { version } = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  assert.match(version, /^\d+\.\d+\.\d+/);
  assert.equal(m.get(`chat_build_info{version="${version}",deno="${Deno.version.deno}"}`), 1);
  assert.equal([...m.keys()].filter((k) => k.startsWith("chat_build_info")).length, 1);
});

Deno.test("chat_event_loop_lag_seconds is how late the probe fired by the app's clock", async () => {
  const clock = new FakeClock();
  const scheduler = new FakeScheduler(clock);
  await using server = await startServer(RELAXED, { clock, scheduler });
  const lag = async () =>
    (await scrape(server.httpUrl("/metrics"))).get("chat_event_loop_lag_seconds");
  assert.equal(await lag(), 0, "before the first probe");
  scheduler.advance(1000);
  assert.equal(await lag(), 0, "a probe on time");
  // The loop is blocked: the clock moves 1.25 s with no timer running, then the probe fires.
  clock.time += 1250;
  scheduler.advance(0);
  assert.equal(await lag(), 0.25);
  scheduler.advance(1000);
  assert.equal(await lag(), 0, "the next probe is due an interval after the late one");
  await server.app[Symbol.asyncDispose]();
  assert.equal(scheduler.pending, 0, "a timer left after shutdown");
});

Deno.test("EventLoopLag probes one timer at a time and stops for good", () => {
  const clock = new FakeClock();
  const scheduler = new FakeScheduler(clock);
  const probe = new EventLoopLag({ clock, scheduler, intervalMs: 500 });
  probe.start();
  probe.start();
  assert.equal(scheduler.pending, 1);
  clock.time += 800;
  scheduler.advance(0);
  assert.equal(probe.seconds, 0.3);
  assert.equal(scheduler.pending, 1);
  probe.stop();
  assert.equal(scheduler.pending, 0);
  probe.start();
  assert.equal(scheduler.pending, 0, "started again after stop");
  assert.throws(
    () => new EventLoopLag({ intervalMs: 0 }),
    /^RangeError: Event loop lag interval must be a positive number of ms: 0$/,
  );
});
