import assert from "node:assert/strict";
import { startServer } from "./helpers/app_server.ts";
import { eventually } from "./helpers/eventually.ts";
import { FakeClock, FakeScheduler } from "./helpers/fakes.ts";
import { TestClient } from "./helpers/ws_client.ts";

Deno.test("a hidden tab may ask for a slower heartbeat, within ten times the server's", async (t) => {
  const clock = new FakeClock();
  const scheduler = new FakeScheduler(clock);
  await using server = await startServer(
    { HEARTBEAT_INTERVAL_MS: "1000", HEARTBEAT_TIMEOUT_MS: "3000" },
    { clock, scheduler },
  );
  await using busy = await TestClient.connect(server.url("/ws/chat/busy/heartbeat"));
  await using hidden = await TestClient.connect(server.url("/ws/chat/hidden/heartbeat"));
  await using greedy = await TestClient.connect(server.url("/ws/chat/greedy/heartbeat"));
  for (const c of [busy, hidden, greedy]) await c.next("welcome");

  await t.step("the ack says the heartbeat now in force, capped at ten times", async () => {
    hidden.sendJson({ type: "heartbeat", interval_ms: 5000 });
    const ack = await hidden.next("heartbeat_ack");
    assert.deepEqual(ack.heartbeat, { interval_ms: 5000, timeout_ms: 15000 });
    greedy.sendJson({ type: "heartbeat", interval_ms: 3_600_000 });
    const capped = await greedy.next("heartbeat_ack");
    assert.deepEqual(capped.heartbeat, { interval_ms: 10_000, timeout_ms: 30_000 });
  });
  await t.step("silent for 4 s: only the socket at the server's own pace is dropped", async () => {
    scheduler.advance(4000);
    assert.equal((await busy.closed).code, 4000);
    assert.equal(hidden.frames.filter((f) => f.type === "ping").length, 0, "pinged too soon");
  });
  await t.step("the slower one is pinged at its pace and dropped after its timeout", async () => {
    scheduler.advance(2000);
    await hidden.next("ping");
    scheduler.advance(10_000);
    assert.equal((await hidden.closed).code, 4000);
    await eventually("greedy still open", () => greedy.frames.some((f) => f.type === "ping"));
  });
  await t.step("a malformed interval is bad_message", async () => {
    greedy.sendJson({ type: "heartbeat", interval_ms: "slow" });
    assert.equal((await greedy.next("error")).code, "bad_message");
  });
});
