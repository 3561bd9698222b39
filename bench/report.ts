/**
 * Renders benchmark results as Markdown tables: medians with their spread
 * (min–max over the repeats) and the ratio ours / baseline, taken as the
 * median of the ratios of each back-to-back pair.
 *
 * @module
 */

import type { Measurement } from "./measure.ts";
import { median, summarize, type Summary } from "./stats.ts";

/** The repeats of one scenario, ours and the baseline in back-to-back pairs. */
export interface Pairs {
  ours: Measurement[];
  baseline: Measurement[];
}

/** One row of a comparison table. */
export interface Row {
  label: string;
  value: (m: Measurement) => number;
  format: (value: number) => string;
  /** Whether to print the ratio column. Default true. */
  ratio?: boolean;
}

/** Formats a count with k/M suffixes. */
export function count(value: number): string {
  if (!Number.isFinite(value)) return "–";
  if (Math.abs(value) >= 1e6) return `${(value / 1e6).toFixed(2)}M`;
  if (Math.abs(value) >= 1e4) return `${(value / 1e3).toFixed(0)}k`;
  if (Math.abs(value) >= 1e3) return `${(value / 1e3).toFixed(1)}k`;
  return value.toFixed(value >= 100 ? 0 : value >= 10 ? 1 : 2);
}

/** Formats a fixed number of decimals, or a dash. */
export function fixed(digits: number): (value: number) => string {
  return (value) => Number.isFinite(value) ? value.toFixed(digits) : "–";
}

/** Formats kB as MB. */
export function megabytes(kb: number): string {
  return Number.isFinite(kb) ? (kb / 1024).toFixed(1) : "–";
}

/** Median of the per-pair ratios ours / baseline, with their spread. */
export function pairedRatio(pairs: Pairs, value: (m: Measurement) => number): Summary {
  return summarize(pairRatios(pairs, value));
}

/** The ratio ours / baseline of each back-to-back pair, in run order. */
export function pairRatios(pairs: Pairs, value: (m: Measurement) => number): number[] {
  const ratios: number[] = [];
  const n = Math.min(pairs.ours.length, pairs.baseline.length);
  for (let i = 0; i < n; i++) ratios.push(value(pairs.ours[i]!) / value(pairs.baseline[i]!));
  return ratios;
}

function cell(values: number[], format: (value: number) => string): string {
  const s = summarize(values);
  if (!Number.isFinite(s.median)) return "–";
  if (values.length < 2) return format(s.median);
  return `${format(s.median)} (${format(s.min)}–${format(s.max)})`;
}

/** A Markdown table comparing ours with the baseline, one row per metric. */
export function comparisonTable(pairs: Pairs, rows: readonly Row[]): string {
  const out = [
    "| | ours | baseline | ours / baseline |",
    "|---|---|---|---|",
  ];
  for (const row of rows) {
    let ratio = "";
    if (row.ratio !== false) {
      const r = pairedRatio(pairs, row.value);
      const f = fixed(2);
      ratio = Number.isFinite(r.median)
        ? (pairs.ours.length < 2 ? f(r.median) : `${f(r.median)} (${f(r.min)}–${f(r.max)})`)
        : "–";
    }
    out.push(
      `| ${row.label} | ${cell(pairs.ours.map(row.value), row.format)} | ${
        cell(pairs.baseline.map(row.value), row.format)
      } | ${ratio} |`,
    );
  }
  return out.join("\n");
}

/** Rows for a closed-loop throughput scenario. */
export const THROUGHPUT_ROWS: readonly Row[] = [
  { label: "deliveries/s", value: (m) => m.deliveriesPerS, format: count },
  { label: "deliveries per server CPU s", value: (m) => m.deliveriesPerCpuS, format: count },
  { label: "bytes per delivered frame", value: (m) => m.bytesPerDelivery, format: fixed(0) },
  { label: "server CPU (cores)", value: (m) => m.cpuShare, format: fixed(2) },
  { label: "load CPU (cores)", value: (m) => m.loadCpuShare, format: fixed(2), ratio: false },
  { label: "p50 latency ms (own messages)", value: (m) => m.p50Ms, format: fixed(1) },
  { label: "p99 latency ms (own messages)", value: (m) => m.p99Ms, format: fixed(1) },
  { label: "peak RSS MB", value: (m) => m.peakRssKb, format: megabytes },
  {
    label: "other processes' CPU (cores)",
    value: (m) => m.otherCpuShare,
    format: fixed(2),
    ratio: false,
  },
];

/** Rows for a paced latency scenario. */
export const PACED_ROWS: readonly Row[] = [
  { label: "deliveries/s", value: (m) => m.deliveriesPerS, format: count },
  { label: "bytes per delivered frame", value: (m) => m.bytesPerDelivery, format: fixed(0) },
  { label: "p50 latency ms", value: (m) => m.p50Ms, format: fixed(2) },
  { label: "p99 latency ms", value: (m) => m.p99Ms, format: fixed(2) },
  { label: "max latency ms", value: (m) => m.maxMs, format: fixed(1) },
  { label: "messages per pacing tick, p99", value: (m) => m.burstP99, format: fixed(0) },
  { label: "server CPU (cores)", value: (m) => m.cpuShare, format: fixed(2) },
  // The clients' own queueing is part of the latency measured: a busy load
  // process adds to p99, and ours makes it read larger frames.
  { label: "load CPU (cores)", value: (m) => m.loadCpuShare, format: fixed(2) },
  {
    label: "other processes' CPU (cores)",
    value: (m) => m.otherCpuShare,
    format: fixed(2),
    ratio: false,
  },
];

/** Rows for idle connections. */
export function idleRows(connections: number): Row[] {
  return [
    {
      label: "RSS per connection kB, after a full GC",
      value: (m) => (m.rssLoadedGcKb - m.rssBeforeKb) / connections,
      format: fixed(1),
    },
    {
      label: "JS heap per connection kB, after a full GC",
      value: (m) => (m.heapLoadedKb - m.heapBeforeKb) / connections,
      format: fixed(2),
    },
    {
      label: "RSS per connection kB, before GC",
      value: (m) => (m.rssLoadedKb - m.rssBeforeKb) / connections,
      format: fixed(1),
    },
    { label: "RSS with connections MB", value: (m) => m.rssLoadedKb, format: megabytes },
    {
      label: "server CPU while idle, ms per s",
      value: (m) => m.cpuShare * 1000,
      format: fixed(1),
      ratio: false,
    },
    {
      label: "pings received per s",
      value: (m) => m.pings / m.seconds,
      format: count,
      ratio: false,
    },
    {
      label: "other processes' CPU (cores)",
      value: (m) => m.otherCpuShare,
      format: fixed(2),
      ratio: false,
    },
    { label: "time to connect all, ms", value: (m) => m.connectMs, format: fixed(0) },
  ];
}

/** Rows for connection churn. */
export const CHURN_ROWS: readonly Row[] = [
  { label: "connect+close cycles/s", value: (m) => m.cyclesPerS, format: count },
  {
    label: "server CPU ms per cycle",
    value: (m) => m.cpuS * 1000 / (m.cyclesPerS * m.seconds),
    format: fixed(3),
  },
  { label: "server CPU (cores)", value: (m) => m.cpuShare, format: fixed(2) },
  { label: "load CPU (cores)", value: (m) => m.loadCpuShare, format: fixed(2), ratio: false },
  {
    label: "other processes' CPU (cores)",
    value: (m) => m.otherCpuShare,
    format: fixed(2),
    ratio: false,
  },
];

/** A ratio cell: the median of the pairs' ratios ours / baseline, and their range. */
function ratioCell(p: Pairs, value: (m: Measurement) => number): string {
  const rs = p.ours.map((m, i) => value(m) / value(p.baseline[i]!));
  const f = fixed(2);
  return rs.length < 2
    ? f(median(rs))
    : `${f(median(rs))} (${f(Math.min(...rs))}–${f(Math.max(...rs))})`;
}

/** The engines table: a row per engine measured (keyed by engine). */
export function enginesTable(found: Record<string, Pairs>): string[] {
  const table = [
    "| engine | deliveries/s (ours) | ours / baseline deliveries/s | ours / baseline per server CPU s | server CPU (cores), of it redis-server | p99 ms (ours / baseline) |",
    "|---|---|---|---|---|---|",
  ];
  for (const [engine, p] of Object.entries(found)) {
    const ratio = (value: (m: Measurement) => number) => ratioCell(p, value);
    const mid = (value: (m: Measurement) => number) => median(p.ours.map(value));
    table.push(
      `| ${engine} | ${count(mid((m) => m.deliveriesPerS))} | ${ratio((m) => m.deliveriesPerS)} | ${
        ratio((m) => m.deliveriesPerCpuS)
      } | ${fixed(2)(mid((m) => m.cpuShare))}, ${fixed(2)(mid((m) => m.helperCpuShare))} | ${
        fixed(1)(mid((m) => m.p99Ms))
      } / ${fixed(1)(median(p.baseline.map((m) => m.p99Ms)))} |`,
    );
  }
  return table;
}
