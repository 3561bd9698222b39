/**
 * One measurement: a fresh server, its load generators, a timed window, and
 * what the server spent in it.
 *
 * @module
 */

import type { LoadConfig, LoadResult } from "./load.ts";
import {
  allCpuSeconds,
  canPin,
  type LoadProcess,
  otherCpuSeconds,
  type ServerKind,
  type ServerProcess,
  startLoad,
  startServer,
} from "./processes.ts";
import { type CpuUsed, cpuUsed, readCpu } from "./window_cpu.ts";
import { type HistogramJson, LatencyHistogram } from "./stats.ts";

/** The load of one measurement, without the server address. */
export type LoadSpec = Omit<LoadConfig, "base" | "path" | "firstClient" | "ready">;

/** Options of {@linkcode measure}. */
export interface MeasureOptions {
  kind: ServerKind;
  /** Environment of our server on top of the benchmark defaults. Default none. */
  env?: Record<string, string>;
  /** The server's V8 flags, `""` for none. Default: ours as `deno task start`, baseline none. */
  v8Flags?: string;
  /** Our server's route: `chat` or the `heartbeat` route. Default `chat`. */
  route?: "chat" | "heartbeat";
  /** The clients ask for batched frames (`?batch=1`, several messages per frame). Default false. */
  batch?: boolean;
  load: LoadSpec;
  /** Load processes the clients are split over. Default 1. */
  loadProcesses?: number;
  /** Pause after every client is ready, before the traffic starts. Default 300. */
  settleMs?: number;
  /** Traffic before the window opens. Default 500. */
  warmupMs?: number;
  /** The measured window. */
  seconds: number;
  /** Pin the server to CPU 0 and the load to CPU 1. Default true (when taskset exists). */
  pin?: boolean;
  /** Called as the measured window opens and before it closes (e.g. to profile just the window). */
  window?: { opened(): Promise<void>; closing(): Promise<void> };
  /** Processes that serve with the server (redis-server): their CPU counts as the server's. Default none. */
  helperPids?: number[];
  /**
   * Also measure memory after a full GC (through the inspector), before the
   * clients connect and once they are ready. Default false.
   */
  gc?: boolean;
}

/** What one measurement found. */
export interface Measurement {
  kind: ServerKind;
  /** The measured window in seconds. */
  seconds: number;
  /** Copies of room messages received per second, by all clients. */
  deliveriesPerS: number;
  /** Mean size of a delivered message frame in bytes. */
  bytesPerDelivery: number;
  /** Messages sent per second. */
  sentPerS: number;
  /** Connect-ready-close cycles per second (churn). */
  cyclesPerS: number;
  /** End-to-end latency in ms. */
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  latencySamples: number;
  /** Every latency of the window as a histogram, so that windows can be pooled. */
  latency: HistogramJson;
  /** Paced: messages sent by one pacing tick, 99th percentile (the largest of the load processes); else NaN. */
  burstP99: number;
  /** Server CPU seconds in the window, helpers (`helperPids`) included. */
  cpuS: number;
  /** Of `cpuShare`, what the helpers took. */
  helperCpuShare: number;
  /** Server CPU seconds per wall second in the window (1 = one core busy). */
  cpuShare: number;
  /** Load generator CPU seconds per wall second in the window, all processes. */
  loadCpuShare: number;
  /** CPU seconds per wall second other processes on the machine took in the window. */
  otherCpuShare: number;
  /** Deliveries per server CPU second. */
  deliveriesPerCpuS: number;
  /** Server RSS in kB before the clients connected (after a GC with `gc`), when ready, and at its peak. */
  rssBeforeKb: number;
  rssLoadedKb: number;
  peakRssKb: number;
  /** With `gc`: RSS in kB after a full GC once the clients are ready; else NaN. */
  rssLoadedGcKb: number;
  /** With `gc`: JS heap in use in kB after a full GC, before the clients and once ready; else NaN. */
  heapBeforeKb: number;
  heapLoadedKb: number;
  /** Error frames the clients received. */
  errors: number;
  /** Ping frames the clients received in the window. */
  pings: number;
  /** Time to connect every client, in ms (slowest process). */
  connectMs: number;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function path(kind: ServerKind, route: "chat" | "heartbeat", batch: boolean): string {
  const query = batch ? "?room={room}&batch=1" : "?room={room}";
  if (kind === "baseline") return `/ws${query}`;
  return route === "heartbeat" ? `/ws/chat/{name}/heartbeat${query}` : `/ws/chat/{name}${query}`;
}

/** Starts the server `options` describe, on CPU 0 when pinned. */
function startServerFor(options: MeasureOptions, pin: boolean): Promise<ServerProcess> {
  return startServer({
    kind: options.kind,
    env: options.env,
    v8Flags: options.v8Flags,
    cpus: pin ? "0" : undefined,
    inspect: options.gc,
  });
}

/** Starts a fresh server, runs the load against it and stops both. */
export async function measure(options: MeasureOptions): Promise<Measurement> {
  const pin = (options.pin ?? true) && canPin();
  await using server = await startServerFor(options, pin);
  return await measureOn(server, options, pin);
}

/** Starts the load processes of `options` against `server` (not yet running). */
function startLoads(server: ServerProcess, options: MeasureOptions, pin: boolean): LoadProcess[] {
  const processes = Math.max(1, Math.min(options.loadProcesses ?? 1, options.load.clients));
  const loads: LoadProcess[] = [];
  let first = 0;
  // Shared engines (kv, redis) remember names across server runs: never reuse one.
  const namePrefix = `u${crypto.randomUUID().slice(0, 6)}_`;
  const batched = options.batch === true;
  for (let p = 0; p < processes; p++) {
    const clients = Math.floor(options.load.clients / processes) +
      (p < options.load.clients % processes ? 1 : 0);
    const config: LoadConfig = {
      ...options.load,
      clients,
      rate: options.load.rate === undefined ? undefined : options.load.rate * clients /
        options.load.clients,
      base: server.base,
      path: path(server.kind, options.route ?? "chat", batched),
      batched,
      firstClient: first,
      namePrefix,
      ready: server.kind === "ours" ? "welcome" : "open",
    };
    first += clients;
    loads.push(startLoad(config, { cpus: pin ? "1" : undefined }));
  }
  return loads;
}

/** Memory of the server read before and after its clients connected. */
interface MemoryReadings {
  rssBeforeKb: number;
  rssLoadedKb: number;
  rssLoadedGcKb: number;
  heapBeforeKb: number;
  heapLoadedKb: number;
  connectMs: number;
}

/**
 * Measures one window of traffic that is already running: counts for
 * `options.seconds`, then `end`s the loads (`pause` keeps the clients for
 * another window, `stop` ends the load processes).
 */
async function measureWindow(
  server: ServerProcess,
  loads: readonly LoadProcess[],
  options: MeasureOptions,
  memory: MemoryReadings,
  end: "pause" | "stop",
): Promise<Measurement> {
  const othersStart = await allCpuSeconds();
  const helpers = options.helperPids ?? [];
  const sources = { server, loads, helpers };
  const cpuStart = await readCpu(sources);
  const wallStart = performance.now();
  await Promise.all(loads.map((l) => l.send("measure")));
  await options.window?.opened();
  await sleep(options.seconds * 1000);
  await options.window?.closing();
  // Read before `stop`: the load processes exit once they report.
  const cpuEnd = await readCpu(sources);
  const wallS = (performance.now() - wallStart) / 1000;
  const othersEnd = await allCpuSeconds();
  const otherS = otherCpuSeconds(othersStart, othersEnd, [
    server.pid,
    Deno.pid,
    ...helpers,
    ...loads.map((l) => l.pid),
  ]);
  await Promise.all(loads.map((l) => l.send(end)));
  const { hwmKb } = await server.memory();
  const results: LoadResult[] = await Promise.all(loads.map((l) => l.nextResult()));
  return summarize({
    kind: server.kind,
    results,
    wallS,
    otherS,
    peakRssKb: hwmKb,
    memory,
    ...cpuUsed(cpuStart, cpuEnd),
  });
}

/** The counts of the load processes' results of one window, added up. */
function totals(results: readonly LoadResult[]) {
  const histogram = new LatencyHistogram();
  let deliveries = 0, chars = 0, sent = 0, cycles = 0, errors = 0, pings = 0, seconds = 0;
  for (const r of results) {
    histogram.merge(r.latency);
    deliveries += r.deliveries;
    chars += r.deliveryChars;
    sent += r.sent;
    cycles += r.cycles;
    errors += r.errors;
    pings += r.pings;
    seconds = Math.max(seconds, r.seconds);
  }
  return { histogram, deliveries, chars, sent, cycles, errors, pings, seconds };
}

/** What {@linkcode summarize} turns into a measurement. */
interface WindowReadings extends CpuUsed {
  kind: ServerKind;
  results: readonly LoadResult[];
  /** The window's wall seconds, as the runner timed it. */
  wallS: number;
  /** Other processes' CPU seconds in the window. */
  otherS: number;
  peakRssKb: number;
  memory: MemoryReadings;
}

/** One window's measurement from its readings. */
function summarize(readings: WindowReadings): Measurement {
  const { kind, results, wallS, cpuS, helperS, loadCpuS, otherS, peakRssKb, memory } = readings;
  const { histogram, deliveries, chars, sent, cycles, errors, pings, seconds } = totals(results);
  return {
    kind,
    seconds: wallS,
    deliveriesPerS: deliveries / seconds,
    bytesPerDelivery: deliveries > 0 ? chars / deliveries : NaN,
    sentPerS: sent / seconds,
    cyclesPerS: cycles / seconds,
    p50Ms: histogram.quantile(0.5),
    p99Ms: histogram.quantile(0.99),
    maxMs: histogram.count === 0 ? NaN : histogram.max,
    latencySamples: histogram.count,
    latency: histogram.toJSON(),
    burstP99: Math.max(...results.map((r) => r.burstP99 ?? NaN)),
    cpuS,
    cpuShare: cpuS / wallS,
    helperCpuShare: helperS / wallS,
    loadCpuShare: loadCpuS / wallS,
    otherCpuShare: otherS / wallS,
    deliveriesPerCpuS: cpuS > 0 ? deliveries / cpuS : NaN,
    peakRssKb,
    errors,
    pings,
    ...memory,
  };
}

/** The server's memory before its clients connect. */
async function memoryBefore(
  server: ServerProcess,
  gc: boolean | undefined,
): Promise<Pick<MemoryReadings, "heapBeforeKb" | "rssBeforeKb">> {
  const heapBeforeKb = gc ? await server.collectGarbage() : NaN;
  return { heapBeforeKb, rssBeforeKb: (await server.memory()).rssKb };
}

/** Waits for every client, settles and reads the server's memory again. */
async function connect(
  server: ServerProcess,
  loads: readonly LoadProcess[],
  options: MeasureOptions,
  before: Pick<MemoryReadings, "heapBeforeKb" | "rssBeforeKb">,
): Promise<MemoryReadings> {
  const ready = await Promise.all(loads.map((l) => l.ready));
  await sleep(options.settleMs ?? 300);
  const rssLoadedKb = (await server.memory()).rssKb;
  const heapLoadedKb = options.gc ? await server.collectGarbage() : NaN;
  const rssLoadedGcKb = options.gc ? (await server.memory()).rssKb : NaN;
  return {
    ...before,
    rssLoadedKb,
    rssLoadedGcKb,
    heapLoadedKb,
    connectMs: Math.max(...ready.map((r) => r.connectMs)),
  };
}

/** Runs the load of `options` against a running server. */
export async function measureOn(
  server: ServerProcess,
  options: MeasureOptions,
  pin: boolean,
): Promise<Measurement> {
  const before = await memoryBefore(server, options.gc);
  const loads = startLoads(server, options, pin);
  try {
    const memory = await connect(server, loads, options, before);
    await Promise.all(loads.map((l) => l.send("run")));
    await sleep(options.warmupMs ?? 500);
    return await measureWindow(server, loads, options, memory, "stop");
  } finally {
    for (const l of loads) await l[Symbol.asyncDispose]();
  }
}

/** Options of {@linkcode measureAlternating}. */
export interface AlternateOptions {
  /** The measurement of each side; its `seconds` is one window. */
  build: (kind: ServerKind) => MeasureOptions;
  /** Pairs of windows, one of each server, back to back. */
  pairs: number;
  /**
   * Pairs measured first and thrown away. Default 1: the first window of
   * each side after the warm-up is slower than the rest (p99 up to twice),
   * more so for our server than the baseline.
   */
  warmupPairs?: number;
  /** Traffic before each window once a side resumes, in ms. Default 200. */
  rampMs?: number;
  /** Pin the servers to CPU 0 and the loads to CPU 1. Default true (when taskset exists). */
  pin?: boolean;
  /** Whether to measure a pair again (say, another process took CPU during it). Default never. */
  redo?: (ours: Measurement, baseline: Measurement, attempt: number) => boolean;
  /** Progress: each window as it is measured. Default nothing. */
  onWindow?: (m: Measurement, pair: number) => void;
}

/**
 * Waits until a server whose load paused has delivered what was in flight
 * (closed loop at 256 clients keeps seconds of it): its CPU under a tenth
 * of a core over 100 ms, or 15 s at most.
 */
export async function quiet(server: ServerProcess): Promise<void> {
  const deadline = performance.now() + 15_000;
  let last = await server.cpuSeconds();
  while (performance.now() < deadline) {
    await sleep(100);
    const now = await server.cpuSeconds();
    if (now - last <= 0.01) return;
    last = now;
  }
}

interface Side {
  server: ServerProcess;
  loads: LoadProcess[];
  options: MeasureOptions;
  memory: MemoryReadings;
}

/** Starts one side's server and its clients, pushed onto `sides` at once so that it is disposed. */
async function startSide(
  sides: Side[],
  { options, pin }: { options: MeasureOptions; pin: boolean },
): Promise<void> {
  const server = await startServerFor(options, pin);
  const side: Side = { server, loads: [], options, memory: undefined! };
  sides.push(side);
  const before = await memoryBefore(server, options.gc);
  side.loads = startLoads(server, options, pin);
  side.memory = await connect(server, side.loads, options, before);
}

/** Warms each side up once (the JIT, the socket buffers), the other idle, then lets both quiet down. */
async function warmUp(sides: readonly Side[]): Promise<void> {
  for (const { loads, options: o } of sides) {
    await Promise.all(loads.map((l) => l.send("run")));
    await sleep(o.warmupMs ?? 500);
    await Promise.all(loads.map((l) => l.send("pause")));
    await Promise.all(loads.map((l) => l.nextResult()));
  }
  for (const side of sides) await quiet(side.server);
}

/** Runs one side's traffic for one measured window and pauses it again. */
async function sideWindow(side: Side, rampMs: number): Promise<Measurement> {
  await Promise.all(side.loads.map((l) => l.send("run")));
  await sleep(rampMs);
  const m = await measureWindow(side.server, side.loads, side.options, side.memory, "pause");
  // The other side's window must not pay for this one's backlog; the
  // idle side's processes count as other processes' CPU, so it shows.
  await quiet(side.server);
  return m;
}

/**
 * Measures pair `i` (negative: a warmup pair, not kept), measuring it again
 * while `options.redo` asks, and returns it; undefined for a warmup pair.
 */
async function measurePair(
  options: AlternateOptions,
  { sides: [ours, baseline], i }: { sides: readonly [Side, Side]; i: number },
): Promise<{ ours: Measurement; baseline: Measurement } | undefined> {
  const warmup = options.warmupPairs ?? 1;
  for (let attempt = 0;; attempt++) {
    const order = (i + warmup) % 2 === 0 ? [ours, baseline] : [baseline, ours];
    const measured = new Map<Side, Measurement>();
    for (const side of order) {
      const m = await sideWindow(side, options.rampMs ?? 200);
      measured.set(side, m);
      if (i >= 0) options.onWindow?.(m, i);
    }
    if (i < 0) return undefined;
    const o = measured.get(ours)!;
    const b = measured.get(baseline)!;
    if (options.redo?.(o, b, attempt) === true) continue;
    return { ours: o, baseline: b };
  }
}

/**
 * Starts both servers at once, each with its own clients, and measures
 * them in turns: the load of one side pauses (its clients stay connected)
 * while the other's window runs, so the two windows of a pair are seconds
 * apart instead of a server restart apart, and the machine's drift, which
 * on a shared VM moves throughput by a fifth within a minute, mostly
 * cancels in each pair's ratio. The order flips every pair.
 */
export async function measureAlternating(
  options: AlternateOptions,
): Promise<{ ours: Measurement[]; baseline: Measurement[] }> {
  const pin = (options.pin ?? true) && canPin();
  const sides: Side[] = [];
  try {
    for (const kind of ["ours", "baseline"] as const) {
      await startSide(sides, { options: { ...options.build(kind), kind }, pin });
    }
    await warmUp(sides);
    const result = { ours: [] as Measurement[], baseline: [] as Measurement[] };
    for (let i = -(options.warmupPairs ?? 1); i < options.pairs; i++) {
      const pair = await measurePair(options, { sides: sides as [Side, Side], i });
      if (pair === undefined) continue;
      result.ours.push(pair.ours);
      result.baseline.push(pair.baseline);
    }
    return result;
  } finally {
    for (const side of sides) {
      for (const l of side.loads) await l[Symbol.asyncDispose]();
      await side.server[Symbol.asyncDispose]();
    }
  }
}
