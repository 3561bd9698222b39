import assert from "node:assert/strict";
import { memory } from "../bench/processes.ts";
import { ENGINE_NAMES, engineEnv } from "./helpers/engine_env.ts";
import type { Frame } from "./helpers/fakes.ts";
import { type ServerProcess, spawnServer } from "./helpers/server_process.ts";
import { TestClient } from "./helpers/ws_client.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const MESSAGES = 1000;
const TEXT_BYTES = 16_000;
const REPLAY_MAX_BYTES = 256 * 1024;
/**
 * Peak RSS growth allowed while 20 clients recover the whole room (16 MB each)
 * at once; before replay in pages it was over 1 GB.
 */
const RSS_BOUND_MB = 250;
/**
 * Peak RSS growth allowed from one round of 20 recoveries to the next: half
 * of what a round sends (20 × 16 MB), so a server that kept even half of a
 * round's pages goes red, while the garbage collector's own timing (up to
 * 56 MB between rounds seen on CI) does not.
 */
const ROUND_GROWTH_MB = 160;

/** The resident set of a process in MB, now (`rss`) and at its peak (`hwm`). */
async function memoryMb(pid: number): Promise<{ rss: number; hwm: number }> {
  const { rssKb, hwmKb } = await memory(pid);
  return { rss: rssKb / 1024, hwm: hwmKb / 1024 };
}

/** What a recovering client saw: the history ids in order, frame sizes, and how it ended. */
interface Recovered {
  ids: number[];
  frames: number;
  largest: number;
  recovered: unknown;
  closed: number | undefined;
}

/**
 * Connects with `since` and reads the replay to its last page, keeping only
 * ids and sizes (20 clients each get 16 MB: the test must not hold it).
 */
function recover(port: number, epoch: string, name: string): Promise<Recovered> {
  const url = `ws://127.0.0.1:${port}/ws/chat/${name}?room=big&since=0&epoch=${epoch}`;
  const ws = new WebSocket(url);
  const seen: Recovered = {
    ids: [],
    frames: 0,
    largest: 0,
    recovered: undefined,
    closed: undefined,
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      ws.close();
      reject(new Error(`Recovery timed out after ${seen.ids.length} frames`));
    }, 60_000);
    ws.onmessage = (event) => {
      const frame = JSON.parse(event.data) as Frame;
      if (!["welcome", "history"].includes(frame.type ?? "")) return;
      if (frame.type === "welcome") seen.recovered = frame.recovered;
      const history = frame.history as Frame[];
      seen.frames++;
      seen.largest = Math.max(seen.largest, JSON.stringify(history).length);
      for (const h of history) seen.ids.push(h.id as number);
      if (frame.more === false) {
        clearTimeout(timer);
        ws.onclose = () => resolve(seen);
        ws.close();
      }
    };
    ws.onclose = (event) => {
      clearTimeout(timer);
      seen.closed = event.code;
      resolve(seen);
    };
  });
}

/** Fills room "big" with {@linkcode MESSAGES} messages of 16 KB; returns the epoch and the last id. */
async function fill(server: ServerProcess): Promise<{ epoch: string; last: number }> {
  await using writer = await TestClient.connect(
    `ws://127.0.0.1:${server.port}/ws/chat/writer?room=big`,
  );
  const welcome = await writer.next("welcome");
  const text = "x".repeat(TEXT_BYTES);
  let last: Frame | undefined;
  // In steps of 20, each awaited: the writer reads its echoes, or it would be a slow consumer.
  for (let i = 1; i <= MESSAGES; i++) {
    writer.sendJson({ type: "message", message: `${i} ${text}` });
    if (i % 20 !== 0) continue;
    last = await writer.next((f) => f.type === "message" && String(f.message).startsWith(`${i} `));
  }
  return { epoch: String(welcome.epoch), last: last!.id as number };
}

/** Asserts one client got the whole retained history after `since: 0`, in order, in pages. */
function assertWhole(r: Recovered, last: number): void {
  assert.equal(r.closed, undefined, `closed with ${r.closed}`);
  assert.ok(r.ids.length >= MESSAGES, `ids: ${r.ids.length}`);
  const first = r.ids[0]!;
  assert.deepEqual(r.ids, Array.from({ length: r.ids.length }, (_, i) => first + i));
  assert.ok(r.ids.at(-1)! >= last, `ends at ${r.ids.at(-1)}, not ${last}`);
  assert.ok(r.frames >= 50, `frames: ${r.frames}`);
  assert.ok(r.largest <= REPLAY_MAX_BYTES + TEXT_BYTES, `largest page: ${r.largest}`);
}

Deno.test("a 1,000 × 16 KB recovery arrives whole and in order, and 20 at once stay in memory bounds", async (t) => {
  for (const engine of ENGINE_NAMES) {
    await t.step(engine, async () => {
      await using store = await engineEnv(engine);
      await using server = await spawnServer({
        args: ["run", "--allow-all", "--unstable-kv", MAIN],
        env: {
          ...store.env,
          PORT: "0",
          HOST: "127.0.0.1",
          RATE_LIMIT_PER_S: "100000",
          RATE_LIMIT_BURST: "100000",
          HANDSHAKES_PER_IP_PER_MIN: "100000",
          MAX_CONNECTIONS_PER_IP: "1000",
        },
      });
      const { epoch, last } = await fill(server);
      assertWhole(await recover(server.port, epoch, "one"), last);

      const before = (await memoryMb(server.pid)).rss;
      const peaks: number[] = [];
      for (let round = 0; round < 2; round++) {
        const all = await Promise.all(
          Array.from({ length: 20 }, (_, i) => recover(server.port, epoch, `r${i}`)),
        );
        for (const r of all) assertWhole(r, last);
        peaks.push((await memoryMb(server.pid)).hwm);
      }
      const [first, second] = peaks as [number, number];
      console.log(
        `${engine}: RSS ${before.toFixed(0)} MB, peaks ${first.toFixed(0)}, ${
          second.toFixed(0)
        } MB`,
      );
      assert.ok(
        first <= before + RSS_BOUND_MB,
        `peak RSS ${first.toFixed(0)} MB is more than ${RSS_BOUND_MB} MB past ${
          before.toFixed(0)
        } MB`,
      );
      // Bounded, not growing with each round of recoveries.
      assert.ok(
        second <= first + ROUND_GROWTH_MB,
        `peak RSS grew from ${first.toFixed(0)} to ${second.toFixed(0)} MB`,
      );
    });
  }
});
