/**
 * What one writer of a channel knows of the channel's oldest stored
 * publications, so that its publishes trim them without reading them.
 *
 * A publish's trim must count the bytes it removes (see kv_budget.ts), and
 * reading the publications for their sizes costs as much as the publish.
 * The writer knows the sizes of what it committed, and while its commits
 * pass their head check nobody else touched the channel: then it knows
 * which publications exist too. After a failed check it forgets, and the
 * next trim reads.
 *
 * @module
 */

import { msgKey } from "./kv_follow.ts";

/** Publications removed at most per commit, well within Deno KV's 1000 mutations. */
export const DROP_BATCH = 100;

/** Publications a publish removes in its own commit, and their bytes. */
export interface Trim {
  /** Their keys. */
  keys: Deno.KvKey[];
  /** Their bytes (UTF-8). */
  bytes: number;
  /** The channel's oldest publication left after the trim. */
  floor: number;
}

/** One writer's knowledge of its channel's stored publications. */
export class KvTail {
  /** The channel's oldest stored offset after this writer's last commit; undefined when unknown. */
  #floor: number | undefined;
  /** The offset of `#sizes[0]`. */
  #base = 0;
  /** Bytes of the publications from `#base` on, as this writer committed them. */
  #sizes: number[] = [];
  /** When each was stored, for the history TTL. */
  #times: number[] = [];

  /** Forgets which publications exist: another handle may have changed the channel. */
  lost(): void {
    this.#floor = undefined;
  }

  /** Records a commit: its trim, and its publications from `first` on, stored at `t`. */
  committed(trim: Trim | undefined, first: number, sizes: number[], t: number): void {
    if (trim !== undefined) this.#floor = trim.floor;
    if (this.#base + this.#sizes.length !== first) {
      // Offsets between are another handle's: their sizes are unknown.
      this.#base = first;
      this.#sizes = [];
      this.#times = [];
    }
    for (const size of sizes) {
      this.#sizes.push(size);
      this.#times.push(t);
    }
    const gone = Math.min(this.#sizes.length, (this.#floor ?? this.#base) - this.#base);
    if (gone > 0) {
      this.#sizes.splice(0, gone);
      this.#times.splice(0, gone);
      this.#base += gone;
    }
  }

  /**
   * The trim of the oldest publications up to `cutoff` or stored before
   * `oldest`; undefined when this writer does not know them (then read).
   * Only valid for a commit checked against this writer's own last head.
   */
  plan(channel: string, cutoff: number, oldest: number): Trim | undefined {
    const floor = this.#floor;
    if (floor === undefined || floor < this.#base) return undefined;
    const trim: Trim = { keys: [], bytes: 0, floor };
    const end = this.#base + this.#sizes.length;
    for (let offset = floor; offset < end && trim.keys.length < DROP_BATCH; offset++) {
      const i = offset - this.#base;
      if (offset > cutoff && !(this.#times[i]! < oldest)) break;
      trim.keys.push(msgKey(channel, offset));
      trim.bytes += this.#sizes[i]!;
      trim.floor = offset + 1;
    }
    return trim;
  }
}
