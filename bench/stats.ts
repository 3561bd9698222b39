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
  toJSON(): { buckets: [number, number][]; max: number } {
    const buckets: [number, number][] = [];
    for (let i = 0; i < this.#counts.length; i++) {
      const n = this.#counts[i]!;
      if (n > 0) buckets.push([i, n]);
    }
    return { buckets, max: this.#max };
  }

  /** Adds the samples of a histogram in its JSON form. */
  merge(json: { buckets: [number, number][]; max: number }): void {
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
