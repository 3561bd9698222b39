/**
 * The one token bucket of the server: {@linkcode takeToken} over a plain
 * {@linkcode TokenBucket}, which a connection's state holds for its frame
 * rate, and {@linkcode KeyedRateLimiter}, buckets by key (for example one
 * per client address) in bounded memory, without timers: idle buckets are
 * pruned lazily while taking.
 *
 * @module
 */

import { type Clock, systemClock } from "./clock.ts";
import { withDefaults } from "./options.ts";

/**
 * A token bucket's state: two numbers, no methods, so an object that has a
 * bucket (a connection) carries it as two fields rather than another object.
 */
export interface TokenBucket {
  /** Tokens left; fractional while refilling. */
  tokens: number;
  /** When `tokens` was last brought up to date, in milliseconds. */
  tokensAt: number;
}

/** The tokens `bucket` holds at `now`, refilled at `perMs` a millisecond and not yet capped. */
function refilled(bucket: TokenBucket, now: number, perMs: number): number {
  return bucket.tokens + (now - bucket.tokensAt) * perMs;
}

/**
 * Refills `bucket` up to `now` at `perMs` tokens a millisecond, at most
 * `burst`, and takes one token. Returns 0 when the token was there,
 * otherwise the milliseconds until one will be (nothing is taken then).
 * Positional numbers rather than an options object: it runs for every frame.
 */
export function takeToken(bucket: TokenBucket, now: number, perMs: number, burst: number): number {
  bucket.tokens = Math.min(burst, refilled(bucket, now, perMs));
  bucket.tokensAt = now;
  if (bucket.tokens >= 1) {
    bucket.tokens -= 1;
    return 0;
  }
  return waitMs(bucket.tokens, perMs);
}

/** Milliseconds until a bucket holding `tokens` holds one, at least 1. */
function waitMs(tokens: number, perMs: number): number {
  // The epsilon keeps float noise (0.002 * 499) from rounding a whole 1 ms up to 2.
  return Math.max(1, Math.ceil((1 - tokens) / perMs - 1e-6));
}

/** Options of {@linkcode KeyedRateLimiter}. */
export interface KeyedRateLimiterOptions {
  /** Tokens added to each bucket per second; positive. */
  ratePerS: number;
  /** Tokens a bucket holds at most, the allowed burst; at least 1. */
  burst: number;
  /**
   * Keys tracked at most; past it the least recently used are forgotten.
   * Default: {@linkcode DEFAULT_KEYED_RATE_LIMITER}.
   */
  maxKeys?: number;
  /** Default: the system clock. */
  clock?: Clock;
}

/** The defaults of {@linkcode KeyedRateLimiterOptions}. */
export const DEFAULT_KEYED_RATE_LIMITER: Readonly<{
  maxKeys: number;
  clock: Clock;
}> = Object.freeze({
  maxKeys: 100_000,
  clock: systemClock,
});

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
  #buckets = new Map<string, TokenBucket>();
  #prunedAt: number;

  /** Throws a RangeError for a rate, burst or key limit out of range. */
  constructor(options: KeyedRateLimiterOptions) {
    const { ratePerS, burst, maxKeys, clock } = withDefaults(DEFAULT_KEYED_RATE_LIMITER, options);
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
    this.#clock = clock;
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
      bucket = { tokens: this.#burst, tokensAt: now };
    } else {
      // Re-inserting keeps the map in least recently used order.
      this.#buckets.delete(key);
    }
    this.#buckets.set(key, bucket);
    return takeToken(bucket, now, this.#perMs, this.#burst);
  }

  /**
   * The milliseconds until `key` could take a token (0 when it could now),
   * without taking one or starting to track the key.
   */
  peek(key: string): number {
    const bucket = this.#buckets.get(key);
    if (bucket === undefined) return 0;
    const tokens = refilled(bucket, this.#clock.now(), this.#perMs);
    return tokens >= 1 ? 0 : waitMs(tokens, this.#perMs);
  }

  #prune(now: number): void {
    this.#prunedAt = now;
    for (const [key, bucket] of this.#buckets) {
      if (refilled(bucket, now, this.#perMs) >= this.#burst) {
        this.#buckets.delete(key);
      }
    }
  }
}
