/**
 * Profiles a server under load: starts it with `--inspect`, runs the load,
 * records a V8 CPU profile of just the measured window (not start-up and
 * connecting) and prints the top functions, also in nanoseconds per
 * delivery (or per connect-close cycle).
 *
 * ```sh
 * deno run --allow-all bench/profile.ts [--baseline] [--mode=closed|paced|churn] [--rate=5000] [--clients=64] [--rooms=1] [--seconds=4] [--out=FILE]
 * ```
 *
 * `(idle)` is time the JS thread spent outside JavaScript: the event loop,
 * Rust (frame writes, tokio) and the kernel.
 *
 * @module
 */

import { type CpuProfile, formatProfile, summarizeProfile } from "./cpuprofile.ts";
import { connectInspector } from "./inspector.ts";
import { measureOn } from "./measure.ts";
import { canPin, startServer } from "./processes.ts";

/** Options of {@linkcode profileServer}. */
export interface ProfileOptions {
  /** Profile the baseline instead of our server. Default false. */
  baseline?: boolean;
  /**
   * `closed`: a closed loop; `paced`: `rate` messages/s; `churn`: clients
   * connecting and closing. Default `closed`.
   */
  mode?: "closed" | "paced" | "churn";
  /** Paced: messages per second offered. Default 5000. */
  rate?: number;
  /** Clients (closed), or clients cycling in parallel (churn). Default 64. */
  clients?: number;
  /** Rooms the clients are spread over. Default 1. */
  rooms?: number;
  /** Seconds profiled. Default 4. */
  seconds?: number;
  /** Top functions listed. Default 25. */
  top?: number;
}

/** What {@linkcode profileServer} found. */
export interface ProfileResult {
  profile: CpuProfile;
  /** The summary as text. */
  summary: string;
  /** Deliveries (closed) or cycles (churn) in the window. */
  units: number;
  /** Server CPU seconds in the window. */
  cpuS: number;
}

/** Profiles one server during one measured window. */
export async function profileServer(options: ProfileOptions = {}): Promise<ProfileResult> {
  const pin = canPin();
  const kind = options.baseline ? "baseline" : "ours";
  await using server = await startServer({ kind, cpus: pin ? "0" : undefined, inspect: true });
  await using session = await connectInspector(server.inspectPort!);
  await session.call("Profiler.enable");
  await session.call("Profiler.setSamplingInterval", { interval: 200 });
  let profile: CpuProfile | undefined;
  const mode = options.mode ?? "closed";
  const m = await measureOn(server, {
    kind,
    load: {
      mode,
      clients: options.clients ?? 64,
      rooms: options.rooms ?? 1,
      window: 4,
      rate: options.rate ?? 5000,
    },
    seconds: options.seconds ?? 4,
    settleMs: 1000,
    window: {
      opened: async () => {
        await session.call("Profiler.start");
      },
      closing: async () => {
        profile = (await session.call("Profiler.stop")).profile as CpuProfile;
      },
    },
  }, pin);
  const units = mode === "churn" ? m.cyclesPerS * m.seconds : m.deliveriesPerS * m.seconds;
  const summary = summarizeProfile(profile!);
  const per = mode === "churn" ? "cycle" : "delivery";
  const nsPer = (ms: number) => (ms * 1e6 / units).toFixed(0).padStart(6);
  const lines = [
    `${kind}: ${Math.round(units / m.seconds)} ${per === "cycle" ? "cycles" : "deliveries"}/s, ` +
    `server CPU ${m.cpuShare.toFixed(2)} cores, ${
      Math.round(m.cpuS * 1e9 / units)
    } ns of server CPU per ${per}`,
    "",
    `ns per ${per}: self, total`,
  ];
  for (const f of summary.functions.slice(0, options.top ?? 25)) {
    lines.push(`${nsPer(f.selfMs)} ${nsPer(f.totalMs)}  ${f.name}`);
  }
  lines.push("", formatProfile(summary, options.top ?? 25));
  return { profile: profile!, summary: lines.join("\n"), units, cpuS: m.cpuS };
}

if (import.meta.main) {
  const arg = (name: string) =>
    Deno.args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  const result = await profileServer({
    baseline: Deno.args.includes("--baseline"),
    mode: arg("mode") === "churn" ? "churn" : arg("mode") === "paced" ? "paced" : "closed",
    rate: Number(arg("rate") ?? 5000),
    clients: Number(arg("clients") ?? 64),
    rooms: Number(arg("rooms") ?? 1),
    seconds: Number(arg("seconds") ?? 4),
    top: Number(arg("top") ?? 25),
  });
  const out = arg("out");
  if (out !== undefined) await Deno.writeTextFile(out, JSON.stringify(result.profile));
  console.log(result.summary);
}
