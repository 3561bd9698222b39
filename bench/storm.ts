/**
 * The `storm` scenario: every client of a server dropped at once and coming
 * back as the chat page does, while messages keep flowing. On the memory
 * engine the same process closes every socket with 1001 (see
 * `storm_server.ts`); on kv and redis the server process stops (SIGTERM,
 * which closes with 1001 too) and a new one starts on the same port with
 * the same data.
 *
 * @module
 */

import { startRedis } from "../tools/redis_server.ts";
import { cpuSeconds, type ServerProcess, startLoad, startServer } from "./processes.ts";
import { count, fixed } from "./report.ts";
import type { StormConfig, StormResult } from "./storm_load.ts";

/** The engines a storm runs on. */
export type StormEngine = "memory" | "kv" | "redis";

/** Options of {@linkcode measureStorm}. */
export interface StormOptions {
  engine: StormEngine;
  /** Reconnecting clients. */
  clients: number;
  /** Rooms they are spread over. */
  rooms: number;
  /** Messages per second published during the storm, all rooms together. */
  rate: number;
  /** Publishing before the drop, ms. */
  beforeMs: number;
  /** An experiment: spreads the first reconnect attempt over this much more (see `StormConfig`). Default 0. */
  firstSpreadMs?: number;
  /** Pin the server to CPU 0 and the load to CPU 1. */
  pin: boolean;
  /** Writes the server's V8 CPU profile into this directory (of the server after a restart). Default none. */
  profileDir?: string;
  /** Lets redis-server serve with our server (its URL in `env`, its pid pinned with the server). */
  withRedis: (
    server: { url: string; port: number },
    run: { env: Record<string, string>; helperPids: number[]; pin: boolean },
  ) => Promise<void>;
}

/** A storm's result and what it ran on. */
export interface StormMeasurement extends StormResult {
  engine: StormEngine;
  /** Milliseconds the server was away (kv, redis: stop to listening again; memory: 0). */
  downMs: number;
  /** CPU seconds from the drop to the result: the server (the one after a restart), the load. */
  serverCpuS: number;
  loadCpuS: number;
  /**
   * Rooms where the server counted other than their clients and sender at
   * the end, as `room: counted/expected`: clients that believe they are in
   * a room the server no longer has them in.
   */
  roomMismatches: string[];
  /**
   * With copies lost: the server port's TCP connections holding unsent or
   * unread bytes (`ss`), as `side Recv-Q/Send-Q` lines: data stuck in a
   * client's receive queue means the client stopped reading. Else empty.
   */
  stuckQueues: string[];
}

/** The target: every client back within this, ms. */
export const STORM_TARGET_MS = 10_000;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * The last value `read` gave, every 200 ms until `done` settles: a process
 * that exits as it reports is read up to its last moments.
 */
async function sampleUntil(read: () => Promise<number>, done: Promise<unknown>): Promise<number> {
  let last = await read();
  let over = false;
  done.finally(() => over = true).catch(() => {});
  while (!over) {
    await sleep(200);
    last = await read().catch(() => last);
  }
  return last;
}

/** The storm rooms whose member count on the server is not their clients' and sender's. */
async function roomCounts(port: number, options: StormOptions): Promise<string[]> {
  const response = await fetch(`http://127.0.0.1:${port}/api/rooms`);
  const { rooms } = await response.json() as { rooms: { room: string; users: string[] }[] };
  const counted = new Map(rooms.map((r) => [r.room, r.users.length]));
  const out: string[] = [];
  for (let r = 0; r < options.rooms; r++) {
    const expected = Math.floor(options.clients / options.rooms) +
      (r < options.clients % options.rooms ? 1 : 0) + 1;
    const n = counted.get(`storm${r}`) ?? 0;
    if (n !== expected) out.push(`storm${r}: ${n}/${expected}`);
  }
  return out;
}

/** The connections to or from `port` with bytes in their queues, per `ss -tn`. */
async function queuedBytes(port: number): Promise<string[]> {
  try {
    const { stdout } = await new Deno.Command("ss", { args: ["-tn"], stderr: "null" }).output();
    const rows = new TextDecoder().decode(stdout).split("\n").slice(1);
    const out: string[] = [];
    for (const row of rows) {
      const [, recv, send, local, peer] = row.trim().split(/\s+/);
      if (recv === undefined || (recv === "0" && send === "0")) continue;
      const side = local?.endsWith(`:${port}`)
        ? "server"
        : peer?.endsWith(`:${port}`)
        ? "client"
        : "";
      if (side !== "") out.push(`${side} ${recv}/${send}`);
    }
    return out;
  } catch {
    return ["ss not found"];
  }
}

/** The server's environment for `engine`, with its data in `dir`. */
async function stormEnv(
  options: StormOptions,
  dir: string,
): Promise<{ env: Record<string, string>; redis?: AsyncDisposable }> {
  const env: Record<string, string> = { CHAT_ENGINE: options.engine };
  if (options.engine === "kv") env.KV_PATH = `${dir}/chat.kv`;
  if (options.engine !== "redis") return { env };
  const redis = await startRedis();
  await options.withRedis(redis, { env, helperPids: [], pin: options.pin });
  return { env, redis };
}

/**
 * Drops every client: the memory engine's server closes its sockets on a
 * signal (its history stays); the others' process is restarted with
 * `restart` on the same port, which takes `downMs`.
 */
async function dropEveryone(
  server: ServerProcess,
  restart: ((port: number) => Promise<ServerProcess>) | undefined,
): Promise<{ server: ServerProcess; downMs: number }> {
  if (restart === undefined) {
    Deno.kill(server.pid, "SIGUSR1");
    return { server, downMs: 0 };
  }
  const down = performance.now();
  await server.stop({ graceful: true });
  const again = await restart(server.port);
  return { server: again, downMs: performance.now() - down };
}

/** Runs one storm: connect, publish, drop everyone, wait until all are back and settled. */
export async function measureStorm(options: StormOptions): Promise<StormMeasurement> {
  const dir = await Deno.makeTempDir({ prefix: "chat_storm_" });
  const { env, redis } = await stormEnv(options, dir);
  const cpus = options.pin ? "0" : undefined;
  const script = options.engine === "memory" ? "bench/storm_server.ts" : "main.ts";
  const cpuProfDir = options.profileDir;
  let server = await startServer({ kind: "ours", env, cpus, script, cpuProfDir });
  const config: StormConfig = {
    base: server.base,
    clients: options.clients,
    rooms: options.rooms,
    rate: options.rate,
    firstSpreadMs: options.firstSpreadMs,
    namePrefix: `u${crypto.randomUUID().slice(0, 6)}_`,
  };
  const load = startLoad<StormResult>(config, {
    cpus: options.pin ? "1" : undefined,
    script: "bench/storm_load.ts",
  });
  try {
    const { connectMs } = await load.ready;
    await load.send("run");
    await sleep(options.beforeMs);
    const loadCpu = await cpuSeconds(load.pid);
    const cpuBefore = await server.cpuSeconds();
    const restart = (port: number) =>
      startServer({ kind: "ours", env, cpus, script, cpuProfDir, port });
    const dropped = await dropEveryone(server, options.engine === "memory" ? undefined : restart);
    // A restarted server is a new process, its CPU counted from 0.
    const serverCpu = dropped.server === server ? cpuBefore : 0;
    server = dropped.server;
    const { downMs } = dropped;
    await load.send("pause");
    const reported = load.nextResult();
    const loadCpuS = await sampleUntil(() => cpuSeconds(load.pid), reported) - loadCpu;
    const result = await reported;
    const serverCpuS = await server.cpuSeconds() - serverCpu;
    const roomMismatches = await roomCounts(server.port, options);
    const stuckQueues = result.lost > 0 ? await queuedBytes(server.port) : [];
    return {
      ...result,
      connectMs,
      engine: options.engine,
      downMs,
      serverCpuS,
      loadCpuS,
      roomMismatches,
      stuckQueues,
    };
  } finally {
    await load[Symbol.asyncDispose]();
    // A profile is written as the server exits on SIGTERM.
    await server.stop({ graceful: cpuProfDir !== undefined });
    await redis?.[Symbol.asyncDispose]();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** One line of progress for a storm. */
export function describeStorm(m: StormMeasurement): string {
  return `  storm-${m.engine}: all back ${fixed(0)(m.allBackMs)} ms, welcome p99 ` +
    `${fixed(0)(m.welcomeP99Ms)} ms, lost ${m.lost}, duplicated ${m.duplicated}, ` +
    `published ${m.published}, not back ${m.notBack}, errors ${m.errors}, CPU s server ${
      fixed(1)(m.serverCpuS)
    } ` +
    `load ${fixed(1)(m.loadCpuS)}`;
}

function verdict(m: StormMeasurement): string {
  const ok = m.notBack === 0 && m.allBackMs <= STORM_TARGET_MS && m.lost === 0 &&
    m.duplicated === 0;
  return ok ? "✓" : "✗";
}

/** The storm section's table, a row per engine. */
export function stormTable(results: readonly StormMeasurement[]): string {
  const rows = results.map((m) =>
    `| ${m.engine} | ${fixed(0)(m.allBackMs)} | ${fixed(0)(m.welcomeP50Ms)} / ${
      fixed(0)(m.welcomeP99Ms)
    } | ${fixed(0)(m.handshakeP99Ms)} | ${count(m.published)} | ${m.lost} | ${m.duplicated} | ${
      m.repeatedIds + m.notRecovered
    } | ${m.failedAttempts} | ${fixed(0)(m.downMs)} | ${verdict(m)} |`
  );
  return [
    "| engine | all back, ms | to welcome p50 / p99, ms | handshake p99, ms | messages published | " +
    "lost | duplicated | ids repeated + not recovered | failed attempts | server away, ms | " +
    `target (all back ≤ ${STORM_TARGET_MS / 1000} s, 0 lost, 0 duplicated) |`,
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ...rows,
  ].join("\n");
}
