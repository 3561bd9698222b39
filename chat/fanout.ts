/**
 * Fan-out: the engine delivers each publication of a subscribed channel
 * once per process; here it goes to every local recipient, the members of
 * a room or the holders of a user channel's name. A stored room frame gets
 * its offset spliced in as the id once per message on this process, never
 * per recipient; a user channel's frame arrives stamped with its pair's id
 * and passes through unchanged. This is the message hot path: the `room16`, `room64` and
 * `paced64` benchmark scenarios guard it, with and without `--no-batch`.
 *
 * @module
 */

import type { Client } from "./client.ts";
import { isUserChannel } from "./engines/engine.ts";
import type { Metrics } from "./metrics.ts";
import { utf8Length } from "./bytes.ts";
import type { Outbox } from "./outbox.ts";
import { stampId } from "./publisher.ts";
import type { Registry } from "./registry.ts";

const OPEN = 1;

/** Delivers engine publications to local clients. */
export class Fanout {
  #registry: Registry;
  #outbox: Outbox;
  #metrics: Metrics;
  /** Whether a fan-out is running. */
  #fanning = false;
  /** Deliveries that arrived during a fan-out; null when none did. */
  #pending: [string, string, number][] | null = null;

  /** Fan-out to the registry's clients through the outbox. */
  constructor(registry: Registry, outbox: Outbox, metrics: Metrics) {
    this.#registry = registry;
    this.#outbox = outbox;
    this.#metrics = metrics;
  }

  /** The engine's delivery callback: one publication of a subscribed channel. */
  deliver(channel: string, payload: string, offset?: number): void {
    // A user channel's payload is already stamped with its pair's id: its own offset stays out.
    const text = offset === undefined || isUserChannel(channel)
      ? payload
      : stampId(offset, payload);
    const id = offset ?? 0;
    // A fan-out may publish (a slow consumer's leave notice) and a synchronous
    // engine delivers that at once: finish the current frame first so every
    // member sees ids in order.
    if (this.#fanning) {
      (this.#pending ??= []).push([channel, text, id]);
      return;
    }
    this.#fanning = true;
    try {
      this.#fanOut(channel, text, id);
      // Only a re-entrant delivery allocates: the common path stays garbage-free.
      const pending = this.#pending;
      if (pending !== null) {
        // Entries pushed while draining are drained too, in order.
        for (let i = 0; i < pending.length; i++) {
          const [c, t, n] = pending[i]!;
          this.#fanOut(c, t, n);
        }
      }
    } finally {
      this.#fanning = false;
      this.#pending = null;
    }
  }

  /** Delivers to the members of a room, or to the holders of a user channel's name. */
  #fanOut(channel: string, text: string, id: number): void {
    let delivered = 0;
    let bytes = 0;
    if (isUserChannel(channel)) {
      const holders = this.#registry.byName.get(channel.slice(1));
      if (holders === undefined) return;
      bytes = utf8Length(text);
      // Not through #toMembers: an array there would make its loop over room Sets
      // polymorphic. A copy, since dropping a slow consumer splices the original.
      for (const c of [...holders]) delivered += this.#deliverTo(c, channel, id, text, bytes);
    } else {
      // A pair channel has no members: its frames travel on user channels.
      const members = this.#registry.rooms.get(channel);
      if (members === undefined) return;
      bytes = utf8Length(text);
      delivered = this.#toMembers(members, channel, id, text, bytes);
    }
    const m = this.#metrics;
    m.broadcasts++;
    m.deliveries += delivered;
    m.framesOut += delivered;
    m.bytesOut += delivered * bytes;
  }

  /**
   * Delivers to every member; returns how many got it. A loop of its own:
   * inside the larger #fanOut, V8 leaves the Set iterator unoptimised and
   * allocates a result object per member.
   */
  #toMembers(m: Set<Client>, channel: string, id: number, text: string, bytes: number): number {
    let delivered = 0;
    for (const c of m) delivered += this.#deliverTo(c, channel, id, text, bytes);
    return delivered;
  }

  /** Writes or holds back one delivery; returns 1 when handed to the socket. */
  #deliverTo(c: Client, channel: string, id: number, text: string, bytes: number): number {
    // Before welcome every frame waits; afterwards only rooms sending history do.
    if (c.backlog !== null && (!c.welcomed || c.replaying?.has(channel) === true)) {
      this.#outbox.hold(c, { channel, id, text }, bytes);
      return 0;
    }
    if (c.closing || c.socket.readyState !== OPEN) return 0;
    this.#outbox.write(c, text, bytes);
    return 1;
  }
}
