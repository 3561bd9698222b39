/**
 * Following the channels this process subscribed to on the redis engine:
 * one cursor per channel (the last stream entry handed on), live messages
 * from pub/sub, and a catch-up read of the stream whenever live messages
 * may have been missed (a new subscription, a reconnect, a reset). Stored
 * publications reach the delivery function only through here, so each is
 * handed on exactly once, in offset order, even while catching up.
 *
 * @module
 */

import type { Clock } from "../clock.ts";
import type { Logger } from "../logger.ts";
import { LogThrottle } from "../log_throttle.ts";
import type { Delivery } from "./engine.ts";
import { RESET_ID } from "./redis_bounds.ts";
import type { RedisClient, RedisSubscriber } from "./redis_client.ts";
import type { RedisHistory } from "./redis_history.ts";
import {
  compareIds,
  type Entry,
  entryNumber,
  parseEntries,
  parseMessage,
} from "./redis_scripts.ts";
import type { Waiters } from "./redis_waiters.ts";

/** A channel this process subscribed to (a room or a user channel). */
interface Sub {
  channel: string;
  stream: string;
  pubsub: string;
  /** The last stream entry handed on; null until the starting point is read. */
  cursor: string | null;
  /** Whether SUBSCRIBE was issued (the subscriber restores it on reconnect). */
  subscribed: boolean;
  /** While true, live messages wait in `buffer` for the catch-up to finish. */
  syncing: boolean;
  /** Whether live messages may have been missed and a catch-up is due. */
  stale: boolean;
  running: boolean;
  again: boolean;
  buffer: Entry[];
  /** The running catch-up; a history read waits for it. */
  loop: Promise<void>;
}

// Stream reads are paged so one catch-up never holds a huge reply.
const BATCH = 500;
// Past this many buffered live messages the catch-up is simply read again.
const MAX_BUFFER = 10_000;

/** What the follower needs from the engine. */
export interface RedisFollowOptions {
  /** Reads the streams. */
  client: RedisClient;
  /** Carries the live messages. */
  subscriber: RedisSubscriber;
  /** Names the streams and reads the epoch with a catch-up. */
  streams: RedisHistory;
  /** Publishes waiting for their own delivery. */
  waiters: Waiters;
  /** The pub/sub channel of an engine channel is this prefix and its name. */
  pubsubPrefix: string;
  /** Where failures are logged. */
  log: Logger;
  /** Times the throttled log lines. */
  clock: Clock;
  /** Takes up the epoch a catch-up read (the store may have lost its data). */
  observe: (epoch: unknown) => void;
  /** Told when a catch-up failed: the engine retries the stale channels later. */
  failed: () => void;
}

/** Follows the subscribed channels of one redis engine. */
export class RedisFollower {
  #o: RedisFollowOptions;
  #subs = new Map<string, Sub>();
  /** Counts {@linkcode RedisFollower.rewind}s, so a catch-up sees one that happened meanwhile. */
  #rewinds = 0;
  #closed = false;
  /** Receives every publication; set by the engine's start. */
  deliver: Delivery | undefined;
  /** Created on the first failed delivery. */
  #deliveryFailures: LogThrottle | undefined;

  /** A follower with no channel yet. */
  constructor(options: RedisFollowOptions) {
    this.#o = options;
  }

  /** Starts following a channel; the starting point is read before SUBSCRIBE. */
  subscribe(channel: string): void {
    if (this.#closed || this.#subs.has(channel)) return;
    const sub: Sub = {
      channel,
      stream: this.#o.streams.streamKey(channel),
      pubsub: this.#o.pubsubPrefix + channel,
      cursor: null,
      subscribed: false,
      syncing: true,
      stale: true,
      running: false,
      again: false,
      buffer: [],
      loop: Promise.resolve(),
    };
    this.#subs.set(channel, sub);
    // The starting point is read before SUBSCRIBE and the gap read after it,
    // so a frame published in between is neither lost nor doubled.
    this.#sync(sub);
  }

  /** Stops following a channel. */
  unsubscribe(channel: string): void {
    const sub = this.#subs.get(channel);
    if (sub === undefined) return;
    this.#subs.delete(channel);
    if (sub.subscribed) {
      this.#o.subscriber.unsubscribe(sub.pubsub).catch((error) =>
        this.#o.log.debug("redis_unsubscribe_failed", { channel, error: String(error) })
      );
    }
    this.#o.waiters.release(channel);
  }

  /** Whether a publish of offset `id` to the channel will be handed on here later. */
  awaits(channel: string, id: number): boolean {
    const sub = this.#subs.get(channel);
    return sub !== undefined && (sub.cursor === null || entryNumber(sub.cursor) < id);
  }

  /** Resolves once a channel that is catching up has caught up (at once otherwise). */
  caughtUp(channel: string): Promise<void> {
    const sub = this.#subs.get(channel);
    return sub?.syncing ? sub.loop : Promise.resolve();
  }

  /** Catches every channel up, or only those that may have missed messages. */
  sync(onlyStale = false): void {
    for (const sub of this.#subs.values()) if (!onlyStale || sub.stale) this.#sync(sub);
  }

  /** Pub/sub went down: live messages wait, and every channel must catch up. */
  interrupted(): void {
    for (const sub of this.#subs.values()) {
      sub.syncing = true;
      sub.stale = true;
    }
  }

  /** Moves every cursor back to the start (the store lost its data); call `sync` after. */
  rewind(): void {
    this.#rewinds++;
    for (const sub of this.#subs.values()) if (sub.cursor !== null) sub.cursor = "0-0";
  }

  /** Stops every catch-up and new subscription; live messages still arrive until `close`. */
  stop(): void {
    this.#closed = true;
  }

  /** Forgets every channel; nothing is delivered afterwards. */
  close(): void {
    this.stop();
    this.#subs.clear();
    this.deliver = undefined;
  }

  /** The subscriber's message callback. */
  onMessage(pubsub: string, message: string): void {
    const sub = this.#subs.get(pubsub.slice(this.#o.pubsubPrefix.length));
    if (sub === undefined || sub.pubsub !== pubsub) return;
    const entry = parseMessage(message);
    if (entry === undefined) return;
    // Ephemeral: no cursor to keep, nothing to catch up.
    if (entry.id === "") return this.#hand(entry.channel, entry.payload);
    if (sub.syncing) {
      sub.buffer.push(entry);
      if (sub.buffer.length > MAX_BUFFER) {
        // Everything buffered is in the stream too: read it from there.
        sub.buffer = [];
        sub.again = true;
      }
      return;
    }
    this.#accept(sub, entry);
  }

  #accept(sub: Sub, entry: Entry): void {
    if (sub.cursor === null) return;
    // The channel was deleted: its next publication is offset 1 again.
    if (entry.id === RESET_ID) sub.cursor = RESET_ID;
    if (compareIds(entry.id, sub.cursor) <= 0) return;
    sub.cursor = entry.id;
    const offset = entryNumber(entry.id);
    this.#hand(entry.channel, entry.payload, offset);
    if (this.#o.waiters.size > 0) this.#o.waiters.release(entry.channel, offset);
  }

  #hand(channel: string, payload: string, offset?: number): void {
    try {
      this.deliver?.(channel, payload, offset);
    } catch (error) {
      // A delivery that throws does so for every publication: one line per interval.
      this.#deliveryFailures ??= new LogThrottle({ logger: this.#o.log, clock: this.#o.clock });
      this.#deliveryFailures.error("delivery_failed", { channel, error: String(error) });
    }
  }

  #current(sub: Sub): boolean {
    return !this.#closed && this.#subs.get(sub.channel) === sub;
  }

  #sync(sub: Sub): void {
    if (sub.running) {
      sub.again = true;
      return;
    }
    sub.running = true;
    sub.syncing = true;
    sub.loop = this.#syncLoop(sub);
  }

  async #syncLoop(sub: Sub): Promise<void> {
    try {
      do {
        sub.again = false;
        if (!this.#current(sub)) return;
        if (sub.cursor === null) {
          const reply = await this.#o.client.command([
            "XREVRANGE",
            sub.stream,
            "+",
            "-",
            "COUNT",
            1,
          ]);
          if (!this.#current(sub)) return;
          sub.cursor = parseEntries(reply, sub.channel)[0]?.id ?? "0-0";
        }
        if (!sub.subscribed && !(await this.#subscribeTo(sub))) return;
        // A disconnected subscriber catches up again once it is back.
        if (!this.#o.subscriber.connected) return;
        await this.#catchUp(sub);
      } while (sub.again && this.#current(sub));
    } catch (error) {
      if (!this.#current(sub)) return;
      sub.stale = true;
      this.#o.log.debug("redis_catch_up_failed", { channel: sub.channel, error: String(error) });
      this.#o.failed();
    } finally {
      // In the same tick as the last `again` check, so no request falls between.
      sub.running = false;
    }
  }

  /** Issues SUBSCRIBE; false when the channel was dropped meanwhile. */
  async #subscribeTo(sub: Sub): Promise<boolean> {
    sub.subscribed = true;
    try {
      await this.#o.subscriber.subscribe(sub.pubsub);
    } catch (error) {
      sub.subscribed = false;
      throw error;
    }
    return this.#current(sub);
  }

  /** Reads the stream after the cursor, then hands on what arrived live meanwhile. */
  async #catchUp(sub: Sub): Promise<void> {
    let checked = false;
    for (;;) {
      const rewinds = this.#rewinds;
      const cursor = sub.cursor ?? "0-0";
      const commands: (string | number)[][] = [
        ["XRANGE", sub.stream, `(${cursor}`, "+", "COUNT", BATCH],
      ];
      const top = ["XREVRANGE", sub.stream, "+", "-", "COUNT", 1];
      if (!checked) commands.push(...this.#o.streams.epochCommands(), top);
      const replies = await this.#o.client.pipeline(commands);
      if (!this.#current(sub)) return;
      if (!checked) {
        checked = true;
        this.#o.observe(replies[2]);
        // A stream below the cursor was deleted (its reset message missed) and begun again.
        const last = parseEntries(replies[3], sub.channel)[0]?.id ?? RESET_ID;
        if (rewinds === this.#rewinds && compareIds(last, cursor) < 0) sub.cursor = RESET_ID;
      }
      // A rewind meanwhile moved the cursors back: read again from there.
      if (rewinds !== this.#rewinds || sub.cursor !== cursor) continue;
      const entries = parseEntries(replies[0], sub.channel);
      for (const entry of entries) this.#accept(sub, entry);
      if (entries.length < BATCH) break;
    }
    if (!this.#o.subscriber.connected) return;
    const buffered = sub.buffer;
    sub.buffer = [];
    for (const entry of buffered) this.#accept(sub, entry);
    sub.syncing = false;
    sub.stale = false;
  }
}
