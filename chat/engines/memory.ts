/**
 * The memory engine: a bounded log of payloads per channel, nothing
 * persisted, one process. A new epoch at every start: a restart loses the
 * history, so offsets of the previous life mean nothing.
 *
 * @module
 */

import type {
  Delivery,
  Engine,
  EngineStatus,
  HistoryPage,
  HistoryQuery,
  Payload,
  Publication,
  PublishOptions,
  StreamPosition,
} from "./engine.ts";
import { DEFAULT_ENGINE, newEpoch } from "./engine.ts";
import { withDefaults } from "../options.ts";
import { FrameLog } from "./frame_log.ts";

/** Options of {@linkcode MemoryEngine}. */
export interface MemoryEngineOptions {
  /** Payloads kept per channel. Default: {@linkcode DEFAULT_ENGINE}. */
  historyLimit?: number;
}

/** The defaults of {@linkcode MemoryEngineOptions}. */
export const DEFAULT_MEMORY_ENGINE: Readonly<{ historyLimit: number }> = Object.freeze({
  historyLimit: DEFAULT_ENGINE.historyLimit,
});

/** Stores payloads in process memory; delivers within this process only. */
export class MemoryEngine implements Engine {
  /** The engine's name. */
  readonly name = "memory";
  #limit: number;
  #logs = new Map<string, FrameLog>();
  #deliver: Delivery | undefined;
  #epoch = newEpoch();

  /** Creates an engine that keeps `historyLimit` payloads per channel. */
  constructor(options: MemoryEngineOptions = {}) {
    this.#limit = withDefaults(DEFAULT_MEMORY_ENGINE, options).historyLimit;
  }

  /** A new one at every start: nothing survives a restart. */
  get epoch(): string {
    return this.#epoch;
  }

  /** Sets the delivery function. */
  start(deliver: Delivery): Promise<void> {
    this.#deliver = deliver;
    return Promise.resolve();
  }

  /**
   * Stores (with `history`) and delivers synchronously, inside the call: the
   * delivery function has run when the promise is created.
   */
  publish(
    channel: string,
    payload: Payload,
    options?: PublishOptions,
  ): Promise<StreamPosition | undefined> {
    if (options?.history !== true) {
      this.#deliver?.(channel, payload);
      return Promise.resolve(undefined);
    }
    let log = this.#logs.get(channel);
    if (log === undefined) {
      log = new FrameLog(this.#limit);
      this.#logs.set(channel, log);
    }
    const offset = log.head + 1;
    log.append(payload);
    this.#deliver?.(channel, payload, offset);
    return Promise.resolve({ offset, epoch: this.#epoch });
  }

  /** Reads stored payloads, oldest first. */
  history(channel: string, query: HistoryQuery): Promise<HistoryPage> {
    const log = this.#logs.get(channel);
    const position = { offset: log?.head ?? 0, epoch: this.#epoch };
    if (log === undefined) {
      const complete = query.after === undefined || query.after === 0;
      return Promise.resolve({ publications: [], position, complete });
    }
    // Offsets in a log are consecutive, so the wanted range is known up front.
    const oldest = log.head - log.count + 1;
    let lo = Math.max(oldest, (query.after ?? 0) + 1);
    let hi = Math.min(log.head, (query.before ?? Infinity) - 1);
    if (query.after !== undefined) hi = Math.min(hi, lo + query.limit - 1);
    else lo = Math.max(lo, hi - query.limit + 1);
    const publications: Publication[] = [];
    for (let offset = lo; offset <= hi; offset++) {
      publications.push({ offset, payload: log.text(offset)! });
    }
    // An `after` beyond the head comes from a previous life of the store.
    const complete = query.after === undefined ||
      (query.after <= log.head && oldest <= query.after + 1);
    return Promise.resolve({ publications, position, complete });
  }

  /** Nothing to do: every channel is local. */
  subscribe(_channel: string): void {}

  /** Nothing to do: every channel is local. */
  unsubscribe(_channel: string): void {}

  /** Always ok. */
  status(): EngineStatus {
    return "ok";
  }

  /** Drops all payloads. */
  [Symbol.asyncDispose](): Promise<void> {
    this.#logs.clear();
    this.#deliver = undefined;
    return Promise.resolve();
  }
}
