import assert from "node:assert/strict";
import { memory } from "../bench/processes.ts";
import { RedisClient } from "../chat/engines/redis_client.ts";
import { ENGINE_NAMES, engineEnv } from "./helpers/engine_env.ts";
import { eventually } from "./helpers/eventually.ts";
import { type ServerProcess, spawnServer } from "./helpers/server_process.ts";
import { TestClient } from "./helpers/ws_client.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
/** A budget the churn below passes several times over within its few seconds. */
const BUDGET = 2 * 1024 * 1024;
const CHURN_MS = 6000;
const SOCKETS = 20;
const TEXT = "x".repeat(16_000);

/** The resident set of a process in MB. */
async function rssMb(pid: number): Promise<number> {
  return (await memory(pid)).rssKb / 1024;
}

/** One value of the server's /metrics. */
async function metric(port: number, name: string): Promise<number> {
  const body = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = body.split("\n").find((l) => l.startsWith(`${name} `));
  return Number(line?.split(" ")[1]);
}

/**
 * One socket's churn: join a new room, send 8 × 16 KB, leave; again until
 * `until`. Refusals (the default handshake and new-room limits) end a round.
 */
async function churn(port: number, id: number, until: number): Promise<number> {
  let rooms = 0;
  for (let round = 0; Date.now() < until; round++) {
    let client: TestClient;
    try {
      client = await TestClient.connect(
        `ws://127.0.0.1:${port}/ws/chat/c${id}?room=c${id}-${round}`,
      );
    } catch {
      // 429: the handshake limit of this address; wait as a client would.
      await new Promise((resolve) => setTimeout(resolve, 250));
      continue;
    }
    await using _ = client;
    try {
      await client.next("welcome");
    } catch {
      continue; // Closed: the new-room quota of this address.
    }
    rooms++;
    for (let i = 1; i <= 8; i++) client.sendJson({ type: "message", message: `${i} ${TEXT}` });
    await client.next((f) => f.type === "message" && String(f.message).startsWith("8 "))
      .catch(() => undefined);
  }
  return rooms;
}

/** The bytes of every file of the KV database (with its WAL). */
async function kvBytes(path: string): Promise<number> {
  let bytes = 0;
  for (const suffix of ["", "-wal", "-shm"]) {
    bytes += await Deno.stat(path + suffix).then((s) => s.size, () => 0);
  }
  return bytes;
}

/** Redis's used_memory and its keys without a TTL. */
async function redisState(
  url: string,
): Promise<{ used: number; keys: number; forever: string[]; keysList: string[] }> {
  await using redis = new RedisClient({ url, reconnect: false });
  await redis.connect();
  const info = String(await redis.command(["INFO", "memory"]));
  const used = Number(info.match(/used_memory:(\d+)/)?.[1]);
  const forever: string[] = [];
  const keysList: string[] = [];
  let keys = 0;
  let cursor = "0";
  do {
    const [next, batch] = await redis.command(["SCAN", cursor, "COUNT", "1000"]) as [
      string,
      string[],
    ];
    cursor = next;
    for (const key of batch) {
      keys++;
      keysList.push(key);
      if (await redis.command(["PTTL", key]) === -1) forever.push(key);
    }
  } while (cursor !== "0");
  return { used, keys, forever, keysList };
}

/** Talks in room "steady" every 300 ms until `until`; resolves with how many it said. */
async function keepTalking(keeper: TestClient, until: number): Promise<number> {
  let said = 0;
  while (Date.now() < until) {
    keeper.sendJson({ type: "message", message: `steady ${++said}` });
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
  return said;
}

/** Asserts that a newcomer to "steady" gets its recent messages. */
async function assertSteadyKept(port: number, said: number): Promise<void> {
  // The churn used up this address's handshakes: the next one comes within a second.
  let reader: TestClient | undefined;
  await eventually("a handshake allowed again", async () => {
    reader = await TestClient.connect(`ws://127.0.0.1:${port}/ws/chat/reader?room=steady`)
      .catch(() => undefined);
    return reader !== undefined;
  }, { timeoutMs: 5000, intervalMs: 200 });
  await using _ = reader!;
  const welcome = await reader!.next("welcome");
  const history = (welcome.history as { message?: string }[]).map((f) => f.message);
  for (const n of [said, said - 5]) {
    assert.ok(history.includes(`steady ${n}`), `steady ${n} missing`);
  }
}

/** Asserts what the store holds on disk (kv) or in Redis after the churn. */
async function assertStoreBounded(
  store: { kvPath?: string; redisUrl?: string },
  redisBefore: number | undefined,
): Promise<void> {
  if (store.kvPath !== undefined) {
    const bytes = await kvBytes(store.kvPath);
    console.log(`kv: ${(bytes / 1048576).toFixed(1)} MB on disk`);
    assert.ok(bytes < 8 * BUDGET, `KV files hold ${bytes} bytes`);
  }
  if (store.redisUrl !== undefined) {
    const after = await redisState(store.redisUrl);
    const used = after.used - redisBefore!;
    console.log(`redis: used_memory +${used} B, ${after.keys} keys`);
    assert.ok(used < 4 * BUDGET, `used_memory +${used}`);
    assert.deepEqual(after.forever.filter((k) => /c\d+-\d+/.test(k)), []);
    // Two keys (stream, seq) per room the budget holds, and a few of the store's own.
    const rooms = Math.ceil(BUDGET / (8 * 16_000));
    assert.ok(after.keys <= 2 * rooms + 12, `keys: ${after.keys}: ${after.keysList.join(" ")}`);
  }
}

/** Churns rooms from {@linkcode SOCKETS} sockets while the keeper talks in "steady". */
async function churnAround(
  port: number,
  keeper: TestClient,
): Promise<{ created: number; said: number }> {
  const until = Date.now() + CHURN_MS;
  const talk = keepTalking(keeper, until);
  const rooms = await Promise.all(Array.from({ length: SOCKETS }, (_, i) => churn(port, i, until)));
  const said = await talk;
  await keeper.next((f) => f.type === "message" && f.message === `steady ${said}`);
  return { created: rooms.reduce((a, b) => a + b, 0), said };
}

Deno.test("room churn stays within the history budget on every engine", async (t) => {
  for (const engine of ENGINE_NAMES) {
    await t.step(engine, async () => {
      await using store = await engineEnv(engine);
      await using server: ServerProcess = await spawnServer({
        args: ["run", "--allow-all", "--unstable-kv", MAIN],
        env: { ...store.env, PORT: "0", HOST: "127.0.0.1", HISTORY_MAX_BYTES: String(BUDGET) },
      });
      const port = server.port;
      const redisBefore = store.redisUrl === undefined
        ? undefined
        : (await redisState(store.redisUrl)).used;
      // A room in use all along, by a member who stays: it keeps its recent history.
      await using keeper = await TestClient.connect(
        `ws://127.0.0.1:${port}/ws/chat/keeper?room=steady`,
      );
      await keeper.next("welcome");
      const rssBefore = await rssMb(server.pid);
      const { created, said } = await churnAround(port, keeper);
      assert.ok(created * 8 * 16_000 > 2 * BUDGET, `only ${created} rooms churned`);
      await eventually("every churned room left", async () => {
        const health = await (await fetch(`http://127.0.0.1:${port}/healthz`)).json();
        return health.rooms === 1;
      });
      const stored = await metric(port, "chat_history_stored_bytes");
      assert.ok(stored <= BUDGET, `stored ${stored} bytes of a ${BUDGET} budget`);
      assert.ok(await metric(port, "chat_history_evictions_total") > 0, "nothing evicted");
      const growth = await rssMb(server.pid) - rssBefore;
      console.log(`${engine}: ${created} rooms, stored ${stored} B, RSS +${growth.toFixed(0)} MB`);
      assert.ok(growth < 96, `RSS grew ${growth.toFixed(0)} MB`);
      // The room in use keeps its recent messages; nothing else is left behind.
      await assertSteadyKept(port, said);
      await assertStoreBounded(store, redisBefore);
    });
  }
});
