/**
 * The heartbeat: clients that asked for it are pinged every interval and
 * dropped after a silence of the timeout. One timer for every client, not
 * one per client: the `idle` benchmark scenario measures what each idle
 * connection costs.
 *
 * @module
 */

import type { Client } from "./client.ts";
import type { Clock, Scheduler, TimerHandle } from "./clock.ts";
import type { Logger } from "./logger.ts";
import type { Metrics } from "./metrics.ts";
import { utf8Length } from "./bytes.ts";
import type { Outbox } from "./outbox.ts";
import { CloseCode, CloseReason } from "./protocol.ts";

/** The heartbeat's defaults, as {@linkcode ConnectionManagerOptions} names them. */
export const DEFAULT_HEARTBEAT: Readonly<
  { heartbeatIntervalMs: number; heartbeatTimeoutMs: number }
> = Object.freeze({
  /** Server ping cadence on the heartbeat route. */
  heartbeatIntervalMs: 10_000,
  /** Silence after which a heartbeat socket is closed with 4000. */
  heartbeatTimeoutMs: 30_000,
});

/** The longest slot of the heartbeat's wheel, in milliseconds. */
const SLOT_MS = 10;

/** The clients of one slot: a list, with how many of its entries are gone. */
interface Slot {
  list: Client[];
  gone: number;
}

/** What the heartbeat needs from the manager. */
export interface HeartbeatOptions {
  /** The manager's clock. */
  clock: Clock;
  /** Runs the timers. */
  scheduler: Scheduler;
  /** Where events are logged. */
  log: Logger;
  /** The counters to update. */
  metrics: Metrics;
  /** Writes to and closes sockets. */
  outbox: Outbox;
  /** See {@linkcode DEFAULT_HEARTBEAT}. */
  heartbeatIntervalMs: number;
  /** See {@linkcode DEFAULT_HEARTBEAT}. */
  heartbeatTimeoutMs: number;
  /** Ends a silent client. */
  drop: (client: Client, code: number, reason: string) => void;
}

/**
 * Pings heartbeat clients and drops silent ones. Each client waits in the
 * slot of its next check (its next ping, its timeout, or one interval,
 * whichever is first), and a timer every slot checks only the clients of
 * the slots it passed: pings go out spread as the clients connected, a few
 * at a time, not in one burst per second that a chat beside them would wait
 * behind, and a tick with nothing due costs nothing per client.
 */
export class Heartbeat {
  #o: HeartbeatOptions;
  /** Milliseconds per slot: the precision of pings and timeouts. */
  #slotMs: number;
  /** Clients by the slot they are next checked in (each client's `beatSlot`). */
  #slots = new Map<number, Slot>();
  /** The slot last scheduled into: a sweep puts most of its clients in one. */
  #lastSlot = -1;
  #lastClients: Slot | undefined;
  /** The last slot checked. */
  #checked = 0;
  #timer: TimerHandle | undefined;
  #stopped = false;

  /** A heartbeat whose timer starts with its first client. */
  constructor(options: HeartbeatOptions) {
    this.#o = options;
    this.#slotMs = Math.max(1, Math.min(SLOT_MS, Math.floor(options.heartbeatIntervalMs / 4)));
  }

  /** Watches a client. */
  add(client: Client): void {
    if (this.#stopped || client.beatSlot !== -1) return;
    const now = this.#o.clock.now();
    if (this.#timer === undefined) {
      this.#checked = Math.floor(now / this.#slotMs);
      this.#timer = this.#o.scheduler.setInterval(() => this.sweep(), this.#slotMs);
    }
    this.#schedule(client, this.#nextCheck(client, now));
  }

  /** Stops watching a client. */
  delete(client: Client): void {
    const slot = client.beatSlot;
    if (slot === -1) return;
    client.beatSlot = -1;
    const clients = this.#slots.get(slot);
    if (clients === undefined) return;
    // Left in the list, skipped when its slot comes; the list is compacted once half is gone.
    clients.gone++;
    if (clients.gone * 2 < clients.list.length) return;
    clients.list = clients.list.filter((c) => c.beatSlot === slot);
    clients.gone = 0;
    if (clients.list.length === 0) this.#forget(slot);
  }

  /** Stops the timer for good. */
  stop(): void {
    this.#stopped = true;
    if (this.#timer !== undefined) this.#o.scheduler.clearInterval(this.#timer);
    this.#timer = undefined;
    for (const { list } of this.#slots.values()) for (const c of list) c.beatSlot = -1;
    this.#slots.clear();
    this.#forget(this.#lastSlot);
  }

  /** Checks the clients of every slot up to now: sends due pings and drops silent clients. */
  sweep(): void {
    const now = this.#o.clock.now();
    const last = Math.floor(now / this.#slotMs);
    const ping = new LazyPing(now);
    for (const slot of this.#dueSlots(last)) {
      this.#checked = slot;
      const clients = this.#slots.get(slot);
      if (clients === undefined) continue;
      this.#forget(slot);
      for (const client of clients.list) {
        // Gone, or a second entry of a client already checked.
        if (client.beatSlot !== slot) continue;
        client.beatSlot = -1;
        this.#check(client, now, ping);
      }
    }
    this.#checked = Math.max(this.#checked, last);
  }

  /** The slots after the last checked up to `last`: walked in order, or picked when few are filled. */
  #dueSlots(last: number): number[] {
    if (last - this.#checked <= this.#slots.size) {
      return Array.from(
        { length: Math.max(0, last - this.#checked) },
        (_, i) => this.#checked + 1 + i,
      );
    }
    // A long pause (a suspended machine, a test's clock jump): only the filled slots.
    return [...this.#slots.keys()].filter((slot) => slot <= last).sort((a, b) => a - b);
  }

  #check(client: Client, now: number, ping: LazyPing): void {
    const o = this.#o;
    if (now - client.lastSeen >= o.heartbeatTimeoutMs * client.beatScale) {
      o.metrics.heartbeatTimeouts++;
      o.log.info("heartbeat_timeout", { conn: client.id, username: client.username });
      o.drop(client, CloseCode.HeartbeatTimeout, CloseReason.HeartbeatTimeout);
      return;
    }
    if (now - client.lastPing >= o.heartbeatIntervalMs * client.beatScale) {
      client.lastPing = now;
      o.outbox.sendText(client, ping.text, ping.bytes);
    }
    this.#schedule(client, this.#nextCheck(client, now));
  }

  /**
   * The client's next ping or timeout, and at most one interval away: a
   * client that asks for a faster heartbeat again is back on it within one.
   */
  #nextCheck(client: Client, now: number): number {
    const o = this.#o;
    const scale = client.beatScale;
    return Math.min(
      client.lastPing + o.heartbeatIntervalMs * scale,
      client.lastSeen + o.heartbeatTimeoutMs * scale,
      now + o.heartbeatIntervalMs,
    );
  }

  #schedule(client: Client, at: number): void {
    const slot = Math.max(Math.ceil(at / this.#slotMs), this.#checked + 1);
    client.beatSlot = slot;
    if (slot !== this.#lastSlot) {
      this.#lastSlot = slot;
      this.#lastClients = this.#slots.get(slot);
      if (this.#lastClients === undefined) {
        this.#slots.set(slot, this.#lastClients = { list: [], gone: 0 });
      }
    }
    this.#lastClients!.list.push(client);
  }

  /** Removes a slot, and the cache of it. */
  #forget(slot: number): void {
    this.#slots.delete(slot);
    if (slot === this.#lastSlot) {
      this.#lastSlot = -1;
      this.#lastClients = undefined;
    }
  }
}

/** The ping of one sweep, serialised once and only when a client is due. */
class LazyPing {
  #now: number;
  #text: string | undefined;
  #bytes = 0;

  constructor(now: number) {
    this.#now = now;
  }

  get text(): string {
    if (this.#text === undefined) {
      this.#text = JSON.stringify({ type: "ping", server_time: new Date(this.#now).toISOString() });
      this.#bytes = utf8Length(this.#text);
    }
    return this.#text;
  }

  get bytes(): number {
    return this.#bytes;
  }
}
