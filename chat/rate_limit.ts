/**
 * Token buckets by key (for example one per client address) in bounded
 * memory, without timers: idle buckets are pruned lazily while taking.
 *
 * @module
 */

import { type Clock, systemClock } from "./clock.ts";

/** Options of {@linkcode KeyedRateLimiter}. */
export interface KeyedRateLimiterOptions {
  /** Tokens added to each bucket per second; positive. */
  ratePerS: number;
  /** Tokens a bucket holds at most, the allowed burst; at least 1. */
  burst: number;
  /** Keys tracked at most; past it the least recently used are forgotten. Default 100000. */
  maxKeys?: number;
  /** Default: the system clock. */
  clock?: Clock;
}

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * A token bucket per key. A key not seen for a full refill time holds a full
 * bucket, which is the same as not being tracked, so such keys are dropped.
 *
 * @example
 * ```ts
 * const handshakes = new KeyedRateLimiter({ ratePerS: 2, burst: 120 });
 * const waitMs = handshakes.take("203.0.113.7");
 * if (waitMs > 0) console.log(`retry in ${Math.ceil(waitMs / 1000)} s`);
 * ```
 */
export class KeyedRateLimiter {
  #perMs: number;
  #burst: number;
  #maxKeys: number;
  #clock: Clock;
  #refillMs: number;
  #buckets = new Map<string, Bucket>();
  #prunedAt: number;

  /** Throws a RangeError for a rate, burst or key limit out of range. */
  constructor(options: KeyedRateLimiterOptions) {
    const { ratePerS, burst, maxKeys = 100_000 } = options;
    if (!(Number.isFinite(ratePerS) && ratePerS > 0)) {
      throw new RangeError(`Invalid rate: ${ratePerS}`);
    }
    if (!(Number.isFinite(burst) && burst >= 1)) throw new RangeError(`Invalid burst: ${burst}`);
    if (!(Number.isSafeInteger(maxKeys) && maxKeys >= 1)) {
      throw new RangeError(`Invalid key limit: ${maxKeys}`);
    }
    this.#perMs = ratePerS / 1000;
    this.#burst = burst;
    this.#maxKeys = maxKeys;
    this.#clock = options.clock ?? systemClock;
    this.#refillMs = burst / this.#perMs;
    this.#prunedAt = this.#clock.now();
  }

  /** Keys currently tracked. */
  get size(): number {
    return this.#buckets.size;
  }

  /**
   * Takes one token from `key`'s bucket. Returns 0 when the token was there,
   * otherwise the milliseconds until one will be (nothing is taken then).
   */
  take(key: string): number {
    const now = this.#clock.now();
    if (now - this.#prunedAt >= this.#refillMs) this.#prune(now);
    let bucket = this.#buckets.get(key);
    if (bucket === undefined) {
      if (this.#buckets.size >= this.#maxKeys) {
        this.#prune(now);
        // Still full: forget the least recently used, which loses its limit
        // but keeps memory bounded however many addresses show up.
        const oldest = this.#buckets.keys().next();
        if (!oldest.done && this.#buckets.size >= this.#maxKeys) {
          this.#buckets.delete(oldest.value);
        }
      }
      bucket = { tokens: this.#burst, at: now };
    } else {
      // Re-inserting keeps the map in least recently used order.
      this.#buckets.delete(key);
      bucket.tokens = Math.min(this.#burst, bucket.tokens + (now - bucket.at) * this.#perMs);
      bucket.at = now;
    }
    this.#buckets.set(key, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    // The epsilon keeps float noise (0.002 * 499) from rounding a whole 1 ms up to 2.
    return Math.max(1, Math.ceil((1 - bucket.tokens) / this.#perMs - 1e-6));
  }

  /**
   * The milliseconds until `key` could take a token (0 when it could now),
   * without taking one or starting to track the key.
   */
  peek(key: string): number {
    const bucket = this.#buckets.get(key);
    if (bucket === undefined) return 0;
    const tokens = bucket.tokens + (this.#clock.now() - bucket.at) * this.#perMs;
    if (tokens >= 1) return 0;
    return Math.max(1, Math.ceil((1 - tokens) / this.#perMs - 1e-6));
  }

  #prune(now: number): void {
    this.#prunedAt = now;
    for (const [key, bucket] of this.#buckets) {
      if (bucket.tokens + (now - bucket.at) * this.#perMs >= this.#burst) {
        this.#buckets.delete(key);
      }
    }
  }
}
