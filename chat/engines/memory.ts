/**
 * The memory engine: a bounded log of frames per channel, nothing persisted.
 *
 * @module
 */

import type { StoredFrame } from "../protocol.ts";
import type {
  Delivery,
  Draft,
  Engine,
  EngineStatus,
  HistoryPage,
  HistoryQuery,
  TextPage,
} from "./engine.ts";
import { FrameLog } from "./frame_log.ts";

/** Options of {@linkcode MemoryEngine}. */
export interface MemoryEngineOptions {
  /** Frames kept per channel. Default 1000. */
  historyLimit?: number;
}

/** Stores frames in process memory; fans out within this process only. */
export class MemoryEngine implements Engine {
  /** The engine's name. */
  readonly name = "memory";
  #limit: number;
  #logs = new Map<string, FrameLog>();
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
    let log = this.#logs.get(channel);
    if (log === undefined) {
      log = new FrameLog(this.#limit);
      this.#logs.set(channel, log);
    }
    // Adding `id` last keeps the key order (and so the JSON) of `{ ...draft, id }`.
    const frame = draft as StoredFrame;
    frame.id = log.head + 1;
    // Serialised once: the log keeps this text and the fan-out sends it.
    const text = JSON.stringify(frame);
    log.append(text);
    this.#deliver?.(channel, frame, text);
    return frame;
  }

  /** Reads stored frames, oldest first. */
  history(channel: string, query: HistoryQuery): Promise<HistoryPage> {
    const { texts, complete } = this.#read(channel, query);
    const frames = texts.map((text) => JSON.parse(text) as StoredFrame);
    return Promise.resolve({ frames, complete });
  }

  /** Reads stored frames as their JSON, oldest first. */
  historyText(channel: string, query: HistoryQuery): Promise<TextPage> {
    return Promise.resolve(this.#read(channel, query));
  }

  #read(channel: string, query: HistoryQuery): TextPage {
    const log = this.#logs.get(channel);
    if (log === undefined) {
      return { texts: [], lastId: 0, complete: query.after === undefined || query.after === 0 };
    }
    // Ids in a log are consecutive, so the wanted range is known up front.
    const oldest = log.head - log.count + 1;
    let lo = Math.max(oldest, (query.after ?? 0) + 1);
    let hi = Math.min(log.head, (query.before ?? Infinity) - 1);
    if (query.after !== undefined) hi = Math.min(hi, lo + query.limit - 1);
    else lo = Math.max(lo, hi - query.limit + 1);
    const texts: string[] = [];
    for (let id = lo; id <= hi; id++) texts.push(log.text(id)!);
    // An `after` beyond the head comes from a previous life of the store.
    const complete = query.after === undefined ||
      (query.after <= log.head && oldest <= query.after + 1);
    return { texts, lastId: texts.length === 0 ? 0 : hi, complete };
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
    this.#logs.clear();
    this.#deliver = undefined;
    return Promise.resolve();
  }
}
