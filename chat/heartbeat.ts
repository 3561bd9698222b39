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

/** Pings heartbeat clients and drops silent ones. */
export class Heartbeat {
  #o: HeartbeatOptions;
  #clients = new Set<Client>();
  #sweep: TimerHandle | undefined;
  #stopped = false;

  /** A heartbeat whose timer starts with its first client. */
  constructor(options: HeartbeatOptions) {
    this.#o = options;
  }

  /** Watches a client. */
  add(client: Client): void {
    this.#clients.add(client);
    if (this.#sweep !== undefined || this.#stopped) return;
    // A tick a fraction of the interval keeps the ping cadence and timeout
    // within a second of their settings.
    const tick = Math.max(10, Math.min(1000, Math.floor(this.#o.heartbeatIntervalMs / 4)));
    this.#sweep = this.#o.scheduler.setInterval(() => this.sweep(), tick);
  }

  /** Stops watching a client. */
  delete(client: Client): void {
    this.#clients.delete(client);
  }

  /** Stops the timer for good. */
  stop(): void {
    this.#stopped = true;
    if (this.#sweep !== undefined) this.#o.scheduler.clearInterval(this.#sweep);
    this.#sweep = undefined;
  }

  /** Sends due pings and drops silent clients. */
  sweep(): void {
    const o = this.#o;
    const now = o.clock.now();
    let ping: string | undefined;
    let pingBytes = 0;
    for (const c of this.#clients) {
      if (now - c.lastSeen >= o.heartbeatTimeoutMs * c.beatScale) {
        o.metrics.heartbeatTimeouts++;
        o.log.info("heartbeat_timeout", { conn: c.id, username: c.username });
        o.drop(c, CloseCode.HeartbeatTimeout, CloseReason.HeartbeatTimeout);
      } else if (now - c.lastPing >= o.heartbeatIntervalMs * c.beatScale) {
        if (ping === undefined) {
          ping = JSON.stringify({ type: "ping", server_time: new Date(now).toISOString() });
          pingBytes = utf8Length(ping);
        }
        c.lastPing = now;
        o.outbox.sendText(c, ping, pingBytes);
      }
    }
  }
}
