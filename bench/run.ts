/**
 * The benchmark: our server against the minimal Deno broadcast, in one run.
 *
 * ```sh
 * deno task bench            # full run, under 20 minutes
 * deno task bench --quick    # under 2 minutes
 * deno task bench --only=room64,paced64 --repeats=5 --out=results.json
 * deno task bench --only=paced --ours-v8-flags=     # ours without the V8 flags of `deno task start`
 * deno task bench --only=room,paced --no-batch      # ours one frame per message, as the seed tutorials' clients
 * deno task bench --only=room,paced --batched-baseline  # the baseline batching its frames too
 * deno task bench --targets-of=results.json          # the target verdicts of a saved run
 * ```
 *
 * Prints a Markdown report on stdout and progress on stderr.
 *
 * @module
 */

import type { Measurement } from "./measure.ts";
import { canPin, startTaskV8Flags } from "./processes.ts";
import { pairRatios, type Pairs } from "./report.ts";
import {
  FULL_SCALE,
  runScaleSuite,
  type ScaleOptions,
  scaleTargets,
  SMALL_SCALE,
} from "./scale_scenarios.ts";
import { runSuite, type Section, type SuiteOptions } from "./scenarios.ts";
import type { StormEngine } from "./storm.ts";
import { median, medianInterval, pairBootstrap, pooledQuantile } from "./stats.ts";

/** Settings of `--quick` and of the full run. */
export function suiteOptions(args: readonly string[]): SuiteOptions {
  const arg = (name: string) => args.find((a) => a.startsWith(`--${name}=`))?.split("=")[1];
  const quick = args.includes("--quick");
  const options: SuiteOptions = quick
    ? {
      repeats: 2,
      runs: 1,
      seconds: 1,
      warmupS: 0.3,
      idleConnections: 5000,
      slowRepeats: 1,
      churnRepeats: 1,
      pacedLoad: 0.5,
      pacedClients: [64],
      maxOtherCpu: 0.15,
      retries: 1,
      retryUntil: 80_000,
      pin: true,
      log: (line) => console.error(line),
    }
    : {
      // Alternating windows of servers running side by side see the same
      // machine, so short windows pair well; but pairs of one pair of
      // servers share its luck (JIT, memory layout: ±3 % between runs of
      // the same code), so the pairs are spread over four fresh pairs.
      repeats: 12,
      runs: 4,
      seconds: 3,
      warmupS: 0.5,
      idleConnections: 5000,
      slowRepeats: 3,
      churnRepeats: 9,
      pacedLoad: 0.5,
      pacedClients: [16, 64, 256],
      maxOtherCpu: 0.15,
      retries: 2,
      retryUntil: 17 * 60_000,
      pin: true,
      log: (line) => console.error(line),
    };
  const runs = arg("runs");
  if (runs !== undefined) options.runs = Number(runs);
  const repeats = Number(arg("repeats") ?? NaN);
  if (repeats > 0) options.repeats = options.slowRepeats = options.churnRepeats = repeats;
  const seconds = arg("seconds");
  if (seconds !== undefined) options.seconds = Number(seconds);
  const only = arg("only");
  if (only !== undefined) options.only = only.split(",");
  if (args.includes("--no-pin")) options.pin = false;
  if (args.includes("--no-batch")) options.batch = false;
  if (args.includes("--batched-baseline")) options.baselineBatch = true;
  const v8Flags = args.find((a) => a.startsWith("--ours-v8-flags="));
  if (v8Flags !== undefined) options.oursV8Flags = v8Flags.slice("--ours-v8-flags=".length);
  const maxOther = arg("max-other-cpu");
  if (maxOther !== undefined) options.maxOtherCpu = Number(maxOther);
  const retries = arg("retries");
  if (retries !== undefined) options.retries = Number(retries);
  return options;
}

/** The sizes of the scale scenarios: the issue's, small with `--quick`, and their flags. */
export function scaleOptions(args: readonly string[]): ScaleOptions {
  const arg = (name: string) => args.find((a) => a.startsWith(`--${name}=`))?.split("=")[1];
  const scale: ScaleOptions = { ...(args.includes("--quick") ? SMALL_SCALE : FULL_SCALE) };
  const numbers: [string, keyof ScaleOptions][] = [
    ["storm-clients", "stormClients"],
    ["storm-rooms", "stormRooms"],
    ["storm-rate", "stormRate"],
    ["storm-first-spread", "stormFirstSpreadMs"],
    ["bigroom-members", "bigRoomMembers"],
    ["idle15k-connections", "idleConnections"],
    ["idle15k-rooms", "idleRooms"],
    ["chat-seconds", "chatSeconds"],
  ];
  for (const [flag, key] of numbers) {
    const value = arg(flag);
    if (value === undefined) continue;
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`Invalid --${flag}: ${value}`);
    (scale as unknown as Record<string, number>)[key] = n;
  }
  const engines = arg("storm-engines");
  if (engines !== undefined) scale.stormEngines = engines.split(",") as StormEngine[];
  return scale;
}

async function machine(): Promise<string> {
  let model = "unknown CPU";
  try {
    const info = await Deno.readTextFile("/proc/cpuinfo");
    model = /^model name\s*:\s*(.+)$/m.exec(info)?.[1] ?? model;
  } catch {
    // Not Linux.
  }
  return `${navigator.hardwareConcurrency} cores, ${model}, ${Deno.build.os} ${Deno.build.arch}`;
}

/** Below this chance of holding the median (3 pairs give 0.75), an interval decides nothing. */
const MIN_VERDICT_COVERAGE = 0.75;

/** A target's line: the value, its interval, and ✓ or ✗ only when the whole interval agrees. */
function verdictLine(
  label: string,
  value: number,
  interval: { low: number; high: number; coverage: number; kind: string } | undefined,
  ok: (v: number) => boolean,
): string {
  if (interval === undefined) {
    return `- ${label}: ${value.toFixed(3)} ? (too few pairs for a verdict)`;
  }
  const { low, high, coverage, kind } = interval;
  // One run's value alone passes or fails by the machine's drift when the
  // truth is near the line.
  const verdict = coverage < MIN_VERDICT_COVERAGE
    ? "? (too few pairs for a verdict)"
    : ok(low) && ok(high)
    ? "✓"
    : !ok(low) && !ok(high)
    ? "✗"
    : "? (inconclusive)";
  const range = `${Math.round(coverage * 100)} % ${kind} ${low.toFixed(3)}–${high.toFixed(3)}`;
  return `- ${label}: ${value.toFixed(3)} (${range}) ${verdict}`;
}

/** A target: the label of its line and the test its ratio (ours / baseline) must pass. */
interface Target {
  label: string;
  ok: (v: number) => boolean;
}

/** The pairs of the section `id`, when it ran. */
function pairsOf(sections: readonly Section[], id: string): Pairs | undefined {
  return sections.find((s) => s.id === id)?.pairs;
}

/** Each pair's ratio ours / baseline of `value`; undefined without pairs. */
function ratiosOf(
  pairs: Pairs | undefined,
  value: (m: Measurement) => number,
): number[] | undefined {
  return pairs === undefined ? undefined : pairRatios(pairs, value);
}

/** The target's line on the median of the pairs' ratios; none without a finite median. */
function medianLine(target: Target, values: number[] | undefined): string[] {
  if (values === undefined) return [];
  const value = median(values);
  if (!Number.isFinite(value)) return [];
  const interval = values.length < 2 ? undefined : { ...medianInterval(values), kind: "interval" };
  return [verdictLine(target.label, value, interval, target.ok)];
}

/**
 * The target's line on the p99 of every delivery of every window of a side:
 * the quantity the target names, and steadier than one window's p99, which
 * a single stall of the VM can move. The pairs are resampled whole for its
 * interval.
 */
function pooledLine(target: Target, pairs: Pairs | undefined): string[] {
  const n = Math.min(pairs?.ours.length ?? 0, pairs?.baseline.length ?? 0);
  // A saved run without latency histograms gets no pooled line.
  if (pairs === undefined || n === 0 || pairs.ours[0]!.latency === undefined) return [];
  const ratio = (indices: readonly number[]) =>
    pooledQuantile(indices.map((i) => pairs.ours[i]!.latency), 0.99) /
    pooledQuantile(indices.map((i) => pairs.baseline[i]!.latency), 0.99);
  const value = ratio(Array.from({ length: n }, (_, i) => i));
  if (!Number.isFinite(value)) return [];
  const interval = n < 3 ? undefined : { ...pairBootstrap(n, ratio), kind: "bootstrap interval" };
  return [verdictLine(target.label, value, interval, target.ok)];
}

/** Closed-loop throughput and throughput per CPU second at 16, 64 and 256 clients. */
function throughputTargets(sections: readonly Section[]): string[] {
  const lines: string[] = [];
  for (const n of [16, 64, 256]) {
    const pairs = pairsOf(sections, `room${n}`);
    lines.push(
      ...medianLine(
        {
          label: `deliveries/s ours / baseline, ${n} clients (target ≥ 0.95)`,
          ok: (v) => v >= 0.95,
        },
        ratiosOf(pairs, (m) => m.deliveriesPerS),
      ),
      ...medianLine(
        { label: `deliveries per CPU s ours / baseline, ${n} clients`, ok: (v) => v >= 0.95 },
        ratiosOf(pairs, (m) => m.deliveriesPerCpuS),
      ),
    );
  }
  return lines;
}

/** Paced p99, pooled and per window, at 16, 64 and 256 clients. */
function pacedTargets(sections: readonly Section[]): string[] {
  const lines: string[] = [];
  for (const n of [16, 64, 256]) {
    const pairs = pairsOf(sections, `paced${n}`);
    const ok = (v: number) => v <= 1.2;
    lines.push(
      ...pooledLine({
        label: `paced p99 ours / baseline, ${n} clients, all windows pooled (target ≤ 1.2)`,
        ok,
      }, pairs),
      ...medianLine({
        label:
          `paced p99 ours / baseline, ${n} clients, median of the pairs' ratios of one window's p99`,
        ok,
      }, ratiosOf(pairs, (m) => m.p99Ms)),
    );
  }
  return lines;
}

/** Idle RSS per connection, after a full GC and before it. */
function idleTargets(sections: readonly Section[]): string[] {
  const pairs = pairsOf(sections, "idle");
  const ok = (v: number) => v <= 1.2;
  const afterGc = (m: Measurement) => m.rssLoadedGcKb - m.rssBeforeKb;
  const beforeGc = (m: Measurement) => m.rssLoadedKb - m.rssBeforeKb;
  return [
    ...medianLine({
      label: "idle RSS per connection after a full GC, ours / baseline (target ≤ 1.2)",
      ok,
    }, ratiosOf(pairs, afterGc)),
    ...medianLine(
      { label: "idle RSS per connection before GC, ours / baseline", ok },
      ratiosOf(pairs, beforeGc),
    ),
  ];
}

/** The target lines of a run's sections, each only when its scenario ran. */
function targets(sections: Section[]): string[] {
  return [
    ...throughputTargets(sections),
    ...pacedTargets(sections),
    ...idleTargets(sections),
    ...medianLine(
      { label: "connect+close cycles/s ours / baseline (target ≥ 0.8)", ok: (v) => v >= 0.8 },
      ratiosOf(pairsOf(sections, "churn"), (m) => m.cyclesPerS),
    ),
    ...scaleTargets(sections),
  ];
}

function v8FlagsNote(flags: string): string {
  return flags === "" ? "none" : `\`--v8-flags=${flags}\``;
}

async function printTargetsOf(file: string): Promise<void> {
  const saved = JSON.parse(await Deno.readTextFile(file)) as { sections?: Section[] };
  if (!Array.isArray(saved.sections)) throw new TypeError(`Not a saved benchmark run: ${file}`);
  console.log(targets(saved.sections).join("\n"));
}

if (import.meta.main && Deno.args.some((a) => a.startsWith("--targets-of="))) {
  await printTargetsOf(Deno.args.find((a) => a.startsWith("--targets-of="))!.slice(13));
} else if (import.meta.main) {
  const options = suiteOptions(Deno.args);
  if (options.pin && !canPin()) {
    console.error("taskset not found: server and load are not pinned to CPUs");
    options.pin = false;
  }
  const started = performance.now();
  const scale = scaleOptions(Deno.args);
  const sections = await runSuite(options);
  await runScaleSuite(options, scale, sections);
  const minutes = (performance.now() - started) / 60_000;
  const out = [
    `## Results ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC`,
    "",
    `- Machine: ${await machine()}`,
    `- Deno ${Deno.version.deno} (V8 ${Deno.version.v8})`,
    `- Command: \`deno task bench ${Deno.args.join(" ")}\`, ${minutes.toFixed(1)} minutes`,
    `- Our server's V8 flags: ${v8FlagsNote(options.oursV8Flags ?? startTaskV8Flags())}`,
    `- Framing: ours ${
      options.batch === false
        ? "one frame per message (`--no-batch`)"
        : "batched frames (`?batch=1`)"
    }, the baseline ${
      options.baselineBatch === true
        ? "batched frames too (`--batched-baseline`: a reference, not the issue's baseline)"
        : "one frame per message"
    }`,
    `- Servers ${options.pin ? "pinned to CPU 0, load generators to CPU 1" : "not pinned"}; ` +
    `throughput and paced scenarios: ${options.repeats} pairs of alternating ${options.seconds} s windows ` +
    `over ${options.runs} fresh pairs of servers running side by side; churn: ${options.churnRepeats}, ` +
    `idle, engines and scale: ${options.slowRepeats} pairs of fresh servers. Cells are median ` +
    "(min–max); ratios are the median " +
    "of the pairs' ratios. " +
    "A target's verdict is ✓ or ✗ when the median's whole interval (order statistics, about 80 % or more) " +
    "agrees, otherwise inconclusive.",
    "",
    "### Targets",
    "",
    ...targets(sections),
  ];
  for (const s of sections) out.push("", `### ${s.title}`, "", s.markdown);
  console.log(out.join("\n"));
  const file = Deno.args.find((a) => a.startsWith("--out="))?.slice(6);
  if (file !== undefined) {
    await Deno.writeTextFile(
      file,
      JSON.stringify({ options: { ...options, log: undefined }, scale, sections }, null, 2),
    );
  }
}
