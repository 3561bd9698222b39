/**
 * The benchmark's scenarios: each runs ours and the baseline alternately
 * and renders a Markdown section. The throughput and latency scenarios run
 * both servers side by side and alternate short windows between them (a
 * fresh pair of servers for each of `runs`); idle, churn and the engines
 * start a fresh server per measurement.
 *
 * @module
 */

import { startRedis } from "../tools/redis_server.ts";
import { measure, measureAlternating, type Measurement, type MeasureOptions } from "./measure.ts";
import { findProcess, pin, type ServerKind } from "./processes.ts";
import {
  CHURN_ROWS,
  comparisonTable,
  count,
  enginesTable,
  fixed,
  idleRows,
  PACED_ROWS,
  type Pairs,
  THROUGHPUT_ROWS,
} from "./report.ts";
import { median } from "./stats.ts";
import { measureSweep, type SweepResult } from "./sweep_bench.ts";

/** How much to measure. */
export interface SuiteOptions {
  /** Back-to-back pairs of windows per throughput or latency scenario. */
  repeats: number;
  /** Fresh pairs of servers those windows are spread over. */
  runs: number;
  /** Seconds of each measured window. */
  seconds: number;
  /** Seconds of traffic before the window. */
  warmupS: number;
  /** Idle connections. */
  idleConnections: number;
  /** Pairs of the idle, engine and scale scenarios. */
  slowRepeats: number;
  /**
   * Pairs of the churn scenario: a pair takes seconds and varies by a tenth,
   * so it gets enough pairs for an interval narrower than min–max.
   */
  churnRepeats: number;
  /** Paced rate as a share of the baseline's closed-loop deliveries/s. */
  pacedLoad: number;
  /** Clients of the paced scenarios. */
  pacedClients: number[];
  /** Other processes' CPU (cores) above which a measurement is repeated. */
  maxOtherCpu: number;
  /** Repeats of a measurement taken on a busy machine. */
  retries: number;
  /** `performance.now()` after which busy measurements are no longer repeated, to bound the run. */
  retryUntil: number;
  /**
   * V8 flags for our server, e.g. `--max-semi-space-size=2`, `""` for none.
   * Default: those of `deno task start`.
   */
  oursV8Flags?: string;
  /**
   * Whether our clients ask for batched frames (`?batch=1`), as the chat
   * page does; a client of the seed tutorials does not. Default true.
   */
  batch?: boolean;
  /**
   * Whether the baseline's clients ask for batched frames too: the runtime's
   * limit for the same framing, not the baseline. Default false.
   */
  baselineBatch?: boolean;
  /** Pin server and load to CPUs 0 and 1. */
  pin: boolean;
  /** Runs only the scenarios whose id contains one of these. Default: all. */
  only?: string[];
  /** Progress lines. */
  log: (line: string) => void;
}

/** One scenario's output. */
export interface Section {
  id: string;
  title: string;
  markdown: string;
  pairs?: Pairs;
  extra?: unknown;
}

const ROOM_SIZES = [16, 64, 256];

function wanted(options: SuiteOptions, id: string): boolean {
  return options.only === undefined || options.only.some((o) => id.includes(o));
}

/** One line of progress for a measurement. */
export function describe(m: Measurement): string {
  const parts = [
    `${m.kind.padEnd(8)}`,
    m.deliveriesPerS > 0 ? `${count(m.deliveriesPerS)} deliveries/s` : "",
    m.cyclesPerS > 0 ? `${count(m.cyclesPerS)} cycles/s` : "",
    `cpu ${fixed(2)(m.cpuShare)}`,
    `load ${fixed(2)(m.loadCpuShare)}`,
    `others ${fixed(2)(m.otherCpuShare)}`,
    Number.isFinite(m.p99Ms) ? `p50 ${fixed(2)(m.p50Ms)} p99 ${fixed(2)(m.p99Ms)} ms` : "",
    m.errors > 0 ? `ERRORS ${m.errors}` : "",
  ];
  return parts.filter((p) => p !== "").join("  ");
}

/** `built` with `--ours-v8-flags` and batching applied to the server they are for. */
function withSuiteFlags(options: SuiteOptions, built: MeasureOptions): MeasureOptions {
  if (built.kind !== "ours") {
    return options.baselineBatch === true ? { ...built, batch: true } : built;
  }
  const batched = { ...built, batch: options.batch ?? true };
  return options.oursV8Flags === undefined ? batched : { ...batched, v8Flags: options.oursV8Flags };
}

/** Runs ours and the baseline alternately, `repeats` pairs. */
export async function pairs(
  options: SuiteOptions,
  id: string,
  repeats: number,
  build: (kind: ServerKind) => MeasureOptions,
): Promise<Pairs> {
  const result: Pairs = { ours: [], baseline: [] };
  for (let r = 0; r < repeats; r++) {
    // Alternate which goes first, so drift in the machine's load evens out.
    const order: ServerKind[] = r % 2 === 0 ? ["ours", "baseline"] : ["baseline", "ours"];
    for (const kind of order) {
      let best: Measurement | undefined;
      // Other people's processes on a shared machine distort a run: retry it.
      for (let attempt = 0; attempt <= options.retries; attempt++) {
        const m = await measure({ pin: options.pin, ...withSuiteFlags(options, build(kind)) });
        const busy = m.otherCpuShare > options.maxOtherCpu;
        options.log(`  ${id} #${r + 1} ${describe(m)}${busy ? "  (busy machine)" : ""}`);
        if (best === undefined || m.otherCpuShare < best.otherCpuShare) best = m;
        if (!busy || performance.now() > options.retryUntil) break;
      }
      result[kind].push(best!);
    }
  }
  return result;
}

/**
 * `repeats` pairs of windows over `runs` fresh pairs of servers, each pair
 * of servers measured alternately (see {@linkcode measureAlternating}).
 */
async function alternated(
  options: SuiteOptions,
  id: string,
  build: (kind: ServerKind) => MeasureOptions,
  beforeRun?: () => Promise<void>,
): Promise<Pairs> {
  const result: Pairs = { ours: [], baseline: [] };
  const runs = Math.max(1, Math.min(options.runs, options.repeats));
  for (let r = 0; r < runs; r++) {
    await beforeRun?.();
    // Spread the pairs evenly: 12 over 4 runs is 3 each.
    const pairs = Math.floor(options.repeats * (r + 1) / runs) -
      Math.floor(options.repeats * r / runs);
    const got = await measureAlternating({
      pairs,
      pin: options.pin,
      build: (kind) => withSuiteFlags(options, build(kind)),
      onWindow: (m, i) => {
        const busy = m.otherCpuShare > options.maxOtherCpu;
        options.log(
          `  ${id} run ${r + 1} #${i + 1} ${describe(m)}${busy ? "  (busy machine)" : ""}`,
        );
      },
      // Other people's processes on a shared machine distort a pair: measure it again.
      redo: (o, b, attempt) =>
        Math.max(o.otherCpuShare, b.otherCpuShare) > options.maxOtherCpu &&
        attempt < options.retries && performance.now() < options.retryUntil,
    });
    result.ours.push(...got.ours);
    result.baseline.push(...got.baseline);
  }
  return result;
}

/** Closed loop: one room of 16, 64 and 256 clients, then 100 rooms of 10. */
async function throughput(options: SuiteOptions, sections: Section[]): Promise<void> {
  const cases = [
    ...ROOM_SIZES.map((n) => ({
      id: `room${n}`,
      title: `One room, ${n} clients`,
      clients: n,
      rooms: 1,
    })),
    { id: "rooms100x10", title: "100 rooms of 10 clients", clients: 1000, rooms: 100 },
  ];
  for (const c of cases) {
    if (!wanted(options, c.id)) continue;
    options.log(`${c.title}, closed loop`);
    const result = await alternated(options, c.id, (kind) => ({
      kind,
      load: { mode: "closed", clients: c.clients, rooms: c.rooms, window: 4, bytes: 64 },
      seconds: options.seconds,
      warmupMs: options.warmupS * 1000,
      settleMs: c.clients >= 1000 ? 1000 : 300,
    }));
    sections.push({
      id: c.id,
      title: `${c.title}, 64-byte messages, closed loop (window 4 per client)`,
      markdown: comparisonTable(result, THROUGHPUT_ROWS),
      pairs: result,
    });
  }
}

/**
 * Paced: a fixed offered rate, the same for both, for latency. The rate is
 * `pacedLoad` of what a fresh baseline does in closed loop right before
 * each pair of servers, so that p99 is compared at a known utilisation
 * even when the VM's speed drifts during the run.
 */
async function paced(options: SuiteOptions, sections: Section[]): Promise<void> {
  for (const n of options.pacedClients) {
    const id = `paced${n}`;
    if (!wanted(options, id)) continue;
    options.log(`One room, ${n} clients, paced at ${options.pacedLoad} of the baseline's rate`);
    const rates: number[] = [];
    let rate = 1;
    const calibrate = async () => {
      const capacity = await measure({
        kind: "baseline",
        load: { mode: "closed", clients: n, window: 4, bytes: 64 },
        seconds: Math.min(2, options.seconds),
        warmupMs: options.warmupS * 1000,
        pin: options.pin,
      });
      rate = Math.max(1, Math.round(capacity.deliveriesPerS * options.pacedLoad / n));
      rates.push(rate);
      options.log(
        `  ${id}: baseline closed loop ${count(capacity.deliveriesPerS)}/s, offering ${rate}/s`,
      );
    };
    const result = await alternated(options, id, (kind) => ({
      kind,
      load: { mode: "paced", clients: n, rate, bytes: 64 },
      seconds: options.seconds,
      warmupMs: options.warmupS * 1000,
    }), calibrate);
    const offered = median(rates);
    const range = rates.length > 1 ? ` (${Math.min(...rates)}–${Math.max(...rates)})` : "";
    sections.push({
      id,
      title: `One room, ${n} clients, paced: ${offered}${range} messages/s offered (${
        count(offered * n)
      } deliveries/s, ${
        Math.round(options.pacedLoad * 100)
      }% of a fresh baseline's closed-loop rate right before each pair of servers)`,
      markdown: comparisonTable(result, PACED_ROWS),
      pairs: result,
    });
  }
}

/** The heartbeat interval of the idle scenario: every second, so a short window holds several rounds. */
const IDLE_HEARTBEAT_MS = 1000;

/**
 * Pairs of our server on the heartbeat route and the baseline, `n` clients
 * idle in `rooms`, pinged every `heartbeatMs` (default every second, so a
 * short window holds several heartbeat rounds).
 */
export function idlePairs(
  options: SuiteOptions,
  { id, n, rooms, heartbeatMs = IDLE_HEARTBEAT_MS }: {
    id: string;
    n: number;
    rooms: number;
    heartbeatMs?: number;
  },
): Promise<Pairs> {
  return pairs(options, id, options.slowRepeats, (kind) => ({
    kind,
    route: "heartbeat",
    gc: true,
    env: { HEARTBEAT_INTERVAL_MS: String(heartbeatMs), HEARTBEAT_TIMEOUT_MS: "60000" },
    load: {
      mode: "idle",
      clients: n,
      rooms,
      pong: true,
      connectConcurrency: 128,
    },
    seconds: Math.max(2, options.seconds),
    warmupMs: 0,
    settleMs: 1000,
  }));
}

/**
 * The baseline whose clients each send one message: sockets that carried a
 * few frames keep larger native buffers, and this shows how much of the gap
 * that is.
 */
async function idleBaselineWithTraffic(options: SuiteOptions): Promise<Measurement[]> {
  const n = options.idleConnections;
  const traffic: Measurement[] = [];
  for (let r = 0; r < options.slowRepeats; r++) {
    const m = await measure({
      kind: "baseline",
      pin: options.pin,
      gc: true,
      load: {
        mode: "idle",
        clients: n,
        rooms: Math.ceil(n / 10),
        greetBytes: 256,
        connectConcurrency: 128,
      },
      seconds: 1,
      warmupMs: 0,
      settleMs: 1000,
    });
    options.log(`  idle baseline with one message per client ${describe(m)}`);
    traffic.push(m);
  }
  return traffic;
}

/** What the idle section's notes under its table say. */
interface IdleNotes {
  n: number;
  /** kB per connection after a full GC of the baseline whose clients sent a message. */
  trafficPerConn: number;
  /** Server CPU ms of one heartbeat round. */
  perRound: number;
  sweep: SweepResult;
}

/** The idle section's notes: the baseline with traffic, and the heartbeat's cost. */
function idleNotes({ n, trafficPerConn, perRound, sweep }: IdleNotes): string[] {
  return [
    `For reference, the baseline whose clients each sent one 256-byte message (so each socket ` +
    `carried about ten frames, like ours with its welcome and join notices) keeps ` +
    `${fixed(1)(trafficPerConn)} kB per connection after a full GC.`,
    "",
    `Heartbeat cost: one round (a ping to each of ${n} connections and their pongs) costs about ` +
    `${fixed(1)(perRound)} ms of server CPU (ours minus the baseline's idle CPU, medians), ` +
    `once per HEARTBEAT_INTERVAL_MS (default 10 s). ` +
    `The sweep itself, in process with sockets that drop their frames: ` +
    `${fixed(0)(sweep.idleSweepUs)} µs per tick with nothing due, ` +
    `${fixed(0)(sweep.pingSweepUs)} µs per tick that pings all ${n}. One interval timer in all.`,
  ];
}

/** Idle connections on the heartbeat route, and the sweep in process. */
async function idle(options: SuiteOptions, sections: Section[]): Promise<void> {
  if (!wanted(options, "idle")) return;
  const n = options.idleConnections;
  options.log(`${n} idle connections (heartbeat every ${IDLE_HEARTBEAT_MS} ms)`);
  const result = await idlePairs(options, { id: "idle", n, rooms: Math.ceil(n / 10) });
  const traffic = await idleBaselineWithTraffic(options);
  const trafficPerConn = median(traffic.map((m) => (m.rssLoadedGcKb - m.rssBeforeKb) / n));
  const sweep = await measureSweep({ connections: n });
  const oursMs = median(result.ours.map((m) => m.cpuShare * 1000));
  const baseMs = median(result.baseline.map((m) => m.cpuShare * 1000));
  const perRound = (oursMs - baseMs) * IDLE_HEARTBEAT_MS / 1000;
  const markdown = [
    comparisonTable(result, idleRows(n)),
    "",
    ...idleNotes({ n, trafficPerConn, perRound, sweep }),
  ].join("\n");
  sections.push({
    id: "idle",
    title: `${n} idle connections, heartbeat route (10 connections per room)`,
    markdown,
    pairs: result,
    extra: { sweep, heartbeatRoundMs: perRound, baselineWithTraffic: traffic },
  });
}

/** Connection churn: clients that connect, wait until ready and close, in a loop. */
async function churn(options: SuiteOptions, sections: Section[]): Promise<void> {
  if (!wanted(options, "churn")) return;
  const workers = 16;
  options.log(`Connection churn, ${workers} clients in parallel`);
  const result = await pairs(options, "churn", options.churnRepeats, (kind) => ({
    kind,
    load: { mode: "churn", clients: workers },
    seconds: options.seconds,
    warmupMs: options.warmupS * 1000,
  }));
  sections.push({
    id: "churn",
    title: `Connection churn: ${workers} clients in parallel, each connecting (to its own room), ` +
      `waiting for welcome (baseline: open) and closing`,
    markdown: comparisonTable(result, CHURN_ROWS),
    pairs: result,
  });
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(new URL(path, import.meta.url));
    return true;
  } catch {
    return false;
  }
}

/**
 * Lets redis-server serve with our server: its URL goes in `run.env`, its
 * pid in `run.helperPids`, pinned to the server's CPU.
 */
export async function serveWithRedis(
  server: { url: string; port: number },
  run: { env: Record<string, string>; helperPids: number[]; pin: boolean },
): Promise<void> {
  run.env.REDIS_URL = server.url;
  // redis-server works for our server: same CPU, and its CPU counts as the server's.
  const pid = await findProcess(["redis-server", String(server.port)]);
  if (pid !== undefined) {
    run.helperPids.push(pid);
    if (run.pin) await pin(pid, "0");
  }
}

/** Measures one engine's pairs, or the table row saying why it failed. */
async function measureEngine(
  options: SuiteOptions,
  engine: "kv" | "redis",
): Promise<{ pairs: Pairs } | { row: string }> {
  const id = `engine-${engine}`;
  const dir = await Deno.makeTempDir({ prefix: "chat_bench_" });
  let redis: AsyncDisposable | undefined;
  try {
    const env: Record<string, string> = { CHAT_ENGINE: engine };
    if (engine === "kv") env.KV_PATH = `${dir}/chat.kv`;
    const helperPids: number[] = [];
    if (engine === "redis") {
      const server = await startRedis();
      redis = server;
      await serveWithRedis(server, { env, helperPids, pin: options.pin });
    }
    const measured = await pairs(options, id, options.slowRepeats, (kind) => ({
      kind,
      env,
      helperPids: kind === "ours" ? helperPids : [],
      load: { mode: "closed", clients: 64, window: 4, bytes: 64 },
      seconds: options.seconds,
      warmupMs: options.warmupS * 1000,
    }));
    return { pairs: measured };
  } catch (error) {
    options.log(`  ${id}: ${error instanceof Error ? error.message.split("\n")[0] : error}`);
    return { row: `| ${engine} | failed: ${String(error).split("\n")[0]?.slice(0, 80)} | | |` };
  } finally {
    await redis?.[Symbol.asyncDispose]();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Each engine besides memory, once its module exists, at 64 clients. */
async function engines(options: SuiteOptions, sections: Section[]): Promise<void> {
  const rows: string[] = [];
  const found: Record<string, Pairs> = {};
  const memory = sections.find((s) => s.id === "room64")?.pairs;
  if (memory !== undefined) found.memory = memory;
  for (const engine of ["kv", "redis"] as const) {
    if (!wanted(options, `engine-${engine}`)) continue;
    if (!await exists(`../chat/engines/${engine}.ts`)) {
      rows.push(`| ${engine} | not present | | |`);
      continue;
    }
    options.log(`Engine ${engine}, one room, 64 clients, closed loop`);
    const measured = await measureEngine(options, engine);
    if ("row" in measured) rows.push(measured.row);
    else found[engine] = measured.pairs;
  }
  if (Object.keys(found).length === 0 && rows.length === 0) return;
  sections.push({
    id: "engines",
    title: "Engines, one room, 64 clients, closed loop",
    markdown: [...enginesTable(found), ...rows].join("\n"),
    extra: found,
  });
}

/** Runs every scenario in order and returns its sections. */
export async function runSuite(options: SuiteOptions): Promise<Section[]> {
  const sections: Section[] = [];
  await throughput(options, sections);
  await paced(options, sections);
  await idle(options, sections);
  await churn(options, sections);
  await engines(options, sections);
  return sections;
}
