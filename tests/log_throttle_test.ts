import assert from "node:assert/strict";
import { ConnectionManager } from "../chat/connection_manager.ts";
import type { PublishOptions, StreamPosition } from "../chat/engines/engine.ts";
import { MemoryEngine } from "../chat/engines/memory.ts";
import { createLogger } from "../chat/logger.ts";
import { LogThrottle } from "../chat/log_throttle.ts";
import { FakeClock, FakeScheduler, FakeSocket, settle } from "./helpers/fakes.ts";

const INTERVAL_MS = 10_000;

/** A logger that keeps its lines parsed. */
function recordingLogger() {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({ level: "debug", write: (line) => lines.push(JSON.parse(line)) });
  return { lines, logger };
}

Deno.test("LogThrottle writes the first line at once and then one line per interval with a count", async (t) => {
  const clock = new FakeClock();
  const { lines, logger } = recordingLogger();
  const throttle = new LogThrottle({ logger, clock, intervalMs: INTERVAL_MS });

  await t.step("the first occurrence is written at once", () => {
    throttle.warn("publish_failed", { channel: "a", error: "down" });
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!.level, "warn");
    assert.equal(lines[0]!.event, "publish_failed");
    assert.equal(lines[0]!.channel, "a");
    assert.equal(lines[0]!.count, 1);
  });
  await t.step("repeats within the interval are only counted", () => {
    for (let i = 0; i < 500; i++) {
      clock.time += 10;
      throttle.warn("publish_failed", { channel: `c${i}`, error: "down" });
    }
    assert.equal(lines.length, 1);
  });
  await t.step("the first repeat after the interval writes one line counting them all", () => {
    clock.time += INTERVAL_MS;
    throttle.warn("publish_failed", { channel: "z", error: "down" });
    assert.equal(lines.length, 2);
    assert.equal(lines[1]!.count, 501);
    assert.equal(lines[1]!.channel, "z", "the line carries the latest occurrence's fields");
  });
  await t.step("other events are throttled on their own", () => {
    throttle.error("deliver_failed", { error: "boom" });
    throttle.error("deliver_failed", { error: "boom" });
    assert.equal(lines.length, 3);
    assert.equal(lines[2]!.level, "error");
    assert.equal(lines[2]!.count, 1);
  });
  await t.step("after a quiet interval the next occurrence is written at once", () => {
    clock.time += INTERVAL_MS * 3;
    throttle.warn("publish_failed", { error: "down again" });
    assert.equal(lines.length, 4);
    assert.equal(lines[3]!.count, 1);
  });
});

/** A memory engine that cannot store anything, as Redis during an outage. */
class FailingEngine extends MemoryEngine {
  #sync: boolean;
  constructor(options: { sync: boolean }) {
    super();
    this.#sync = options.sync;
  }
  override publish(
    _channel: string,
    _payload: string,
    _options?: PublishOptions,
  ): Promise<StreamPosition | undefined> {
    const error = new Error("Redis is unreachable");
    // Rejected at once, as a memory engine would, or a moment later, as kv and redis do.
    if (this.#sync) return Promise.reject(error);
    return new Promise((_, reject) => setTimeout(() => reject(error), 0));
  }
}

Deno.test("a thousand failed publishes during an outage write at most two log lines", async (t) => {
  for (const sync of [true, false]) {
    await t.step(sync ? "synchronous engine" : "asynchronous engine", async () => {
      const clock = new FakeClock();
      const { lines, logger } = recordingLogger();
      await using manager = new ConnectionManager({
        engine: new FailingEngine({ sync }),
        clock,
        scheduler: new FakeScheduler(clock),
        logger,
        rateLimitPerS: 1_000_000,
        rateLimitBurst: 1_000_000,
      });
      const socket = new FakeSocket();
      const conn = manager.connect(socket, { username: "alice" });
      await settle();
      for (let i = 0; i < 1000; i++) {
        clock.time += 1;
        conn.receive(JSON.stringify({ type: "message", message: `m${i}` }));
      }
      await settle();
      const unavailable = socket.framesOf("error").filter((f) => f.code === "unavailable");
      assert.equal(unavailable.length, 1000, "every sender is still told");
      const failed = lines.filter((line) => line.event === "publish_failed");
      assert.ok(failed.length >= 1 && failed.length <= 2, `${failed.length} publish_failed lines`);
      assert.equal(failed[0]!.count, 1);
    });
  }
});
