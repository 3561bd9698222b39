/**
 * A token bucket on the client's side of the server's rate limit, so that
 * a fast typist's messages are spread out instead of refused.
 *
 * @module
 */

/** Paces frames under a rate of `perS` a second with bursts of `burst`. */
export class Pacer {
  #perS = Infinity;
  #burst = Infinity;
  #tokens = Infinity;
  #at = 0;

  /**
   * Adopts the server's limit, keeping one frame of the burst in reserve:
   * a pong to the server's ping may have to go while messages are waiting.
   */
  configure(limit: { perS: number; burst: number } | undefined, now: number): void {
    if (limit === undefined || !(limit.perS > 0) || !(limit.burst > 0)) {
      this.#perS = this.#burst = this.#tokens = Infinity;
      return;
    }
    this.#perS = limit.perS;
    this.#burst = Math.max(1, limit.burst - 1);
    this.#tokens = Math.min(this.#tokens, this.#burst);
    this.#at = now;
  }

  /** Takes a token at `now`: 0 when the frame may go, else the milliseconds to wait. */
  take(now: number): number {
    if (this.#perS === Infinity) return 0;
    this.#refill(now);
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - this.#tokens) / this.#perS) * 1000);
  }

  /**
   * Counts a frame that cannot wait (a heartbeat, a pong, a join): it goes
   * at once, and the messages behind it wait the longer.
   */
  spend(now: number): void {
    if (this.#perS === Infinity) return;
    this.#refill(now);
    this.#tokens = Math.max(-this.#burst, this.#tokens - 1);
  }

  #refill(now: number): void {
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#at) / 1000) * this.#perS);
    this.#at = now;
  }

  /** Empties the bucket, after the server said `rate_limited` all the same. */
  drain(now: number): void {
    if (this.#perS === Infinity) return;
    this.#tokens = 0;
    this.#at = now;
  }
}
