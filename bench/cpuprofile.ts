/**
 * Summarises a V8 `.cpuprofile` (as written by `deno run --cpu-prof`): the
 * functions with the most self time and the most total time.
 *
 * ```sh
 * deno run --allow-read bench/cpuprofile.ts profile.cpuprofile [top=25]
 * ```
 *
 * @module
 */

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

/** The parts of a V8 CPU profile the summary reads. */
export interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** One function's share of a profile. */
export interface FunctionTime {
  /** `name url:line`. */
  name: string;
  /** Milliseconds with the function on top of the stack. */
  selfMs: number;
  /** Milliseconds with the function anywhere on the stack. */
  totalMs: number;
}

/** Self and total time per function, sorted by self time, most first. */
export function summarizeProfile(
  profile: CpuProfile,
): { totalMs: number; functions: FunctionTime[] } {
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const node of profile.nodes) {
    byId.set(node.id, node);
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  const key = (node: ProfileNode) => {
    const { functionName, url, lineNumber } = node.callFrame;
    const file = url.replace(/^.*\/(main|ext:|node:)/, "$1");
    return `${functionName || "(anonymous)"} ${file}:${lineNumber + 1}`;
  };
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  let totalUs = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    // The delta before sample i+1 is the time spent in sample i.
    const us = profile.timeDeltas[i + 1] ?? 0;
    totalUs += us;
    let node = byId.get(profile.samples[i]!);
    if (node === undefined) continue;
    const top = key(node);
    self.set(top, (self.get(top) ?? 0) + us);
    const seen = new Set<string>();
    while (node !== undefined) {
      const k = key(node);
      if (!seen.has(k)) {
        seen.add(k);
        total.set(k, (total.get(k) ?? 0) + us);
      }
      const up = parent.get(node.id);
      node = up === undefined ? undefined : byId.get(up);
    }
  }
  const functions = [...total.keys()].map((name) => ({
    name,
    selfMs: (self.get(name) ?? 0) / 1000,
    totalMs: (total.get(name) ?? 0) / 1000,
  })).sort((a, b) => b.selfMs - a.selfMs);
  return { totalMs: totalUs / 1000, functions };
}

/** Renders the top functions by self time and by total time as text. */
export function formatProfile(
  summary: { totalMs: number; functions: FunctionTime[] },
  top = 25,
): string {
  const pct = (ms: number) => `${(100 * ms / summary.totalMs).toFixed(1).padStart(5)}%`;
  const out = [`Profile: ${summary.totalMs.toFixed(0)} ms sampled`, "", "Top self time:"];
  for (const f of summary.functions.slice(0, top)) {
    out.push(`  ${pct(f.selfMs)} self ${pct(f.totalMs)} total  ${f.name}`);
  }
  out.push("", "Top total time:");
  const byTotal = [...summary.functions].sort((a, b) => b.totalMs - a.totalMs);
  for (const f of byTotal.slice(0, top)) {
    out.push(`  ${pct(f.totalMs)} total ${pct(f.selfMs)} self  ${f.name}`);
  }
  return out.join("\n");
}

if (import.meta.main) {
  const [file, top] = Deno.args;
  if (file === undefined) throw new TypeError("Missing profile path: pass a .cpuprofile file");
  const profile = JSON.parse(await Deno.readTextFile(file)) as CpuProfile;
  console.log(formatProfile(summarizeProfile(profile), Number(top ?? 25)));
}
