import assert from "node:assert/strict";
import { eventually } from "./helpers/eventually.ts";
import type { Frame } from "./helpers/fakes.ts";
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
