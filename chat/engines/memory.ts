/**
 * The memory engine: a bounded ring of frames per channel, nothing persisted.
 *
 * @module
 */

import type { StoredFrame } from "../protocol.ts";
import type { Delivery, Draft, Engine, EngineStatus, HistoryPage, HistoryQuery } from "./engine.ts";

/** Options of {@linkcode MemoryEngine}. */
export interface MemoryEngineOptions {
  /** Frames kept per channel. Default 1000. */
  historyLimit?: number;
}

interface Ring {
  /** The last id assigned. */
  head: number;
  frames: StoredFrame[];
  /** Index of the oldest frame in `frames` once it is full. */
  start: number;
}

/** Stores frames in process memory; fans out within this process only. */
export class MemoryEngine implements Engine {
  /** The engine's name. */
  readonly name = "memory";
  #limit: number;
  #rings = new Map<string, Ring>();
  #deliver: Delivery | undefined;

  /** Creates an engine that keeps `historyLimit` frames per channel. */
  constructor(options: MemoryEngineOptions = {}) {
    this.#limit = options.historyLimit ?? 1000;
  }

  /** Sets the delivery function. */
  start(deliver: Delivery): Promise<void> {
    this.#deliver = deliver;
    return Promise.resolve();
  }

  /** Assigns an id, stores and delivers synchronously. */
  publish(channel: string, draft: Draft): Promise<StoredFrame> {
    // A copy: the caller may reuse its draft.
    return Promise.resolve(this.#store(channel, { ...draft } as Draft));
  }

  /** Assigns an id, stores and delivers; the draft itself becomes the stored frame. */
  publishSync(channel: string, draft: Draft): StoredFrame {
    return this.#store(channel, draft);
  }

  #store(channel: string, draft: Draft): StoredFrame {
    let ring = this.#rings.get(channel);
    if (ring === undefined) {
      ring = { head: 0, frames: [], start: 0 };
      this.#rings.set(channel, ring);
    }
    // Adding `id` last keeps the key order (and so the JSON) of `{ ...draft, id }`.
    const frame = draft as StoredFrame;
    frame.id = ++ring.head;
    if (this.#limit > 0) {
      if (ring.frames.length < this.#limit) {
        ring.frames.push(frame);
      } else {
        ring.frames[ring.start] = frame;
        ring.start = (ring.start + 1) % this.#limit;
      }
    }
    this.#deliver?.(channel, frame);
    return frame;
  }

  /** Reads stored frames, oldest first. */
  history(channel: string, query: HistoryQuery): Promise<HistoryPage> {
    const ring = this.#rings.get(channel);
    if (ring === undefined) {
      return Promise.resolve({
        frames: [],
        complete: query.after === undefined || query.after === 0,
      });
    }
    // Ids in a ring are consecutive, so the wanted range maps straight to
    // slots: no copy of the ring per join.
    const count = ring.frames.length;
    const oldest = ring.head - count + 1;
    let lo = Math.max(oldest, (query.after ?? 0) + 1);
    let hi = Math.min(ring.head, (query.before ?? Infinity) - 1);
    if (query.after !== undefined) hi = Math.min(hi, lo + query.limit - 1);
    else lo = Math.max(lo, hi - query.limit + 1);
    const frames: StoredFrame[] = [];
    for (let id = lo; id <= hi; id++) frames.push(ring.frames[(ring.start + id - oldest) % count]!);
    // An `after` beyond the head comes from a previous life of the store.
    const complete = query.after === undefined ||
      (query.after <= ring.head && oldest <= query.after + 1);
    return Promise.resolve({ frames, complete });
  }

  /** Nothing to do: every channel is local. */
  subscribe(_channel: string): void {}

  /** Nothing to do: every channel is local. */
  unsubscribe(_channel: string): void {}

  /** Always ok. */
  status(): EngineStatus {
    return "ok";
  }

  /** Drops all frames. */
  [Symbol.asyncDispose](): Promise<void> {
    this.#rings.clear();
    this.#deliver = undefined;
    return Promise.resolve();
  }
}
