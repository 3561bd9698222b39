/**
 * Small statistics for the benchmark: a mergeable latency histogram and
 * medians with their spread.
 *
 * @module
 */

// Buckets grow by 1%: percentiles are within 1% without keeping every sample.
const GROWTH = Math.log(1.01);
// Latencies are kept in microseconds; 1 µs is the first bucket.
const MAX_BUCKET = Math.ceil(Math.log(60_000_000) / GROWTH);

/** A histogram in its sparse JSON form: `[bucket, count]` pairs and the largest value. */
export interface HistogramJson {
  buckets: [number, number][];
  max: number;
}

/** A latency histogram in 1% wide buckets, from 1 µs to 60 s. */
export class LatencyHistogram {
  #counts = new Float64Array(MAX_BUCKET + 1);
  #count = 0;
  #max = 0;

  /** Samples recorded. */
  get count(): number {
    return this.#count;
  }

  /** Records one latency in milliseconds. */
  record(ms: number): void {
    const us = ms * 1000;
    const bucket = us <= 1 ? 0 : Math.min(MAX_BUCKET, Math.ceil(Math.log(us) / GROWTH));
    this.#counts[bucket]!++;
    this.#count++;
    if (ms > this.#max) this.#max = ms;
  }

  /** The sparse form `[[bucket, count], ...]`, for sending between processes. */
  toJSON(): HistogramJson {
    const buckets: [number, number][] = [];
    for (let i = 0; i < this.#counts.length; i++) {
      const n = this.#counts[i]!;
      if (n > 0) buckets.push([i, n]);
    }
    return { buckets, max: this.#max };
  }

  /** Adds the samples of a histogram in its JSON form. */
  merge(json: HistogramJson): void {
    for (const [bucket, n] of json.buckets) {
      this.#counts[bucket]! += n;
      this.#count += n;
    }
    if (json.max > this.#max) this.#max = json.max;
  }

  /** The latency in milliseconds below which `q` (0 to 1) of the samples fall; NaN when empty. */
  quantile(q: number): number {
    if (this.#count === 0) return NaN;
    const rank = Math.max(1, Math.ceil(q * this.#count));
    let seen = 0;
    for (let i = 0; i < this.#counts.length; i++) {
      seen += this.#counts[i]!;
      if (seen >= rank) return Math.min(this.#max, Math.exp(i * GROWTH) / 1000);
    }
    return this.#max;
  }

  /** The largest latency recorded, in milliseconds. */
  get max(): number {
    return this.#max;
  }
}

/** The median of the finite values; NaN when there are none. */
export function median(values: readonly number[]): number {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Median, minimum and maximum of a series of repeats. */
export interface Summary {
  median: number;
  min: number;
  max: number;
}

/** Summarises the finite values of a series; NaN fields when there are none. */
export function summarize(values: readonly number[]): Summary {
  const finite = values.filter(Number.isFinite);
  if (finite.length === 0) return { median: NaN, min: NaN, max: NaN };
  return { median: median(finite), min: Math.min(...finite), max: Math.max(...finite) };
}

/** A distribution-free confidence interval for a median, from the sample's order statistics. */
export interface MedianInterval {
  low: number;
  high: number;
  /** The chance that the interval holds the true median: 0 to 1. */
  coverage: number;
}

/**
 * The narrowest interval `[x(k), x(n+1-k)]` of the sorted finite values whose
 * coverage is at least `confidence` (default 0.8), from the binomial
 * distribution of how many values fall below the median: 7 pairs give the
 * second smallest to the second largest at 87.5 %. With too few values for
 * that confidence, the whole range and its (lower) coverage.
 */
export function medianInterval(values: readonly number[], confidence = 0.8): MedianInterval {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  const n = sorted.length;
  if (n === 0) return { low: NaN, high: NaN, coverage: 0 };
  // below[j]: P(at most j of n values fall below the median) = P(Binomial(n, 1/2) <= j).
  let term = 0.5 ** n;
  let below = term;
  let k = 1;
  let coverage = 1 - 2 * below;
  for (let j = 1; 2 * (j + 1) <= n; j++) {
    term = term * (n - j + 1) / j;
    const wider = 1 - 2 * (below + term);
    if (wider < confidence) break;
    below += term;
    k = j + 1;
    coverage = wider;
  }
  return { low: sorted[k - 1]!, high: sorted[n - k]!, coverage: Math.max(0, coverage) };
}

/** The quantile `q` of every sample of the histograms together. */
export function pooledQuantile(histograms: readonly HistogramJson[], q: number): number {
  const pooled = new LatencyHistogram();
  for (const h of histograms) pooled.merge(h);
  return pooled.quantile(q);
}

/** A bootstrap interval of a statistic. */
export interface BootstrapInterval {
  low: number;
  high: number;
  /** The share of resamples meant to fall inside: 0 to 1. */
  coverage: number;
}

/** Options of {@linkcode pairBootstrap}. */
export interface BootstrapOptions {
  /** Central share of the resampled statistics the interval spans. Default 0.9. */
  coverage?: number;
  /** Resamples drawn. Default 2000. */
  resamples?: number;
  /** Seed of the generator, so that a saved run gives the same interval again. Default 1. */
  seed?: number;
}

/**
 * A percentile bootstrap interval for a statistic of `n` pairs: draws `n`
 * pair indices with replacement, `resamples` times, and returns the central
 * `coverage` of the statistic over those draws. Pairs are drawn whole, so the
 * pairing (both servers measured seconds apart) survives the resampling.
 */
export function pairBootstrap(
  n: number,
  statistic: (indices: readonly number[]) => number,
  options: BootstrapOptions = {},
): BootstrapInterval {
  const coverage = options.coverage ?? 0.9;
  const resamples = options.resamples ?? 2000;
  if (n < 1) return { low: NaN, high: NaN, coverage };
  const random = mulberry32(options.seed ?? 1);
  const values: number[] = [];
  const indices = new Array<number>(n);
  for (let r = 0; r < resamples; r++) {
    for (let i = 0; i < n; i++) indices[i] = Math.floor(random() * n);
    const value = statistic(indices);
    if (Number.isFinite(value)) values.push(value);
  }
  if (values.length === 0) return { low: NaN, high: NaN, coverage };
  values.sort((a, b) => a - b);
  // As many resampled values below the interval as above it.
  const outside = Math.floor((1 - coverage) / 2 * values.length);
  return { low: values[outside]!, high: values[values.length - 1 - outside]!, coverage };
}

/** A small seeded generator of uniform numbers in [0, 1) (mulberry32). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
