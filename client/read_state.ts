/**
 * What a client knows of read positions: its own in each room and
 * conversation (stored by the server per identity, shared by every tab),
 * the other person's in each conversation (read receipts), and the `read`
 * frames waiting to go out, at most one per {@linkcode READ_INTERVAL_MS}
 * per room or conversation.
 *
 * @module
 */

import type { ReadFrame, SeenFrame } from "../chat/protocol.ts";
import type { Timers } from "./timers.ts";

/** The least time between two `read` frames for one room or conversation; the latest waits. */
export const READ_INTERVAL_MS = 1000;

/** A room, or a conversation with the person of a public uid. */
export type ReadTarget = { room: string } | { with: string };

/** A place in a room's or conversation's stream. */
export interface ReadPosition {
  /** The id of the newest message read. */
  id: number;
  /** The epoch of the id. */
  epoch: string;
}

/** Whether `next` moves `known` forward: a later id, or any id of another epoch. */
function forward(next: ReadPosition, known: ReadPosition | undefined): boolean {
  return known === undefined || known.epoch !== next.epoch || next.id > known.id;
}

/** The map key of a target. */
function keyOf(target: ReadTarget): string {
  return "room" in target ? `#${target.room}` : `@${target.with}`;
}

/** A client's read positions and receipts, and its paced `read` frames. */
export class ReadState {
  #timers: Timers;
  #write: (frame: object) => boolean;
  #own = new Map<string, ReadPosition>();
  #seen = new Map<string, ReadPosition>();
  /** Frames not sent yet (paced, or written while disconnected), by target. */
  #due = new Map<string, object>();
  #timer = new Map<string, unknown>();
  /**
   * The last frame sent per target: when (for the pace), and its cid, the
   * one a `rate_limited` may name ("" once taken).
   */
  #sent = new Map<string, { at: number; cid: string; frame: object }>();
  #seq = 0;

  /**
   * Read state that writes its frames with `write`: false when it sent
   * nothing (not connected, or no token of the rate limit left).
   */
  constructor(options: { timers: Timers; write: (frame: object) => boolean }) {
    this.#timers = options.timers;
    this.#write = options.write;
  }

  /** The own position in a room or conversation; undefined when none is known. */
  position(target: ReadTarget): ReadPosition | undefined {
    return this.#own.get(keyOf(target));
  }

  /** How far the person of `uid` has read their conversation with this client. */
  seenBy(uid: string): ReadPosition | undefined {
    return this.#seen.get(uid);
  }

  /**
   * Takes a `read` or `seen` frame; true when it moved a position forward,
   * or told a receipt again (a conversation opened: its messages are shown
   * anew, and their receipt with them).
   */
  receive(frame: ReadFrame | SeenFrame): boolean {
    const position = { id: frame.id, epoch: frame.epoch };
    if (frame.type === "seen") {
      const known = this.#seen.get(frame.with);
      if (known?.epoch === position.epoch && known.id > position.id) return false;
      this.#seen.set(frame.with, position);
      return true;
    }
    const target = frame.room !== undefined ? { room: frame.room } : { with: frame.with ?? "" };
    return this.#set(this.#own, keyOf(target), position);
  }

  /**
   * Marks a room or conversation read up to `position`: known at once, sent
   * now or, within {@linkcode READ_INTERVAL_MS} of the last, when it ends.
   * `to` (the other person's name) lets the server pass a live receipt.
   * False when it does not move the position forward.
   */
  mark(target: ReadTarget & { to?: string }, position: ReadPosition): boolean {
    const key = keyOf(target);
    if (!this.#set(this.#own, key, position)) return false;
    const where = "room" in target ? { room: target.room } : { with: target.with };
    const to = target.to === undefined ? {} : { to: target.to };
    this.#due.set(key, { type: "read", ...where, ...to, ...position });
    if (this.#timer.has(key)) return true;
    const wait = (this.#sent.get(key)?.at ?? -Infinity) + READ_INTERVAL_MS - this.#timers.now();
    if (wait <= 0) this.#send(key);
    else this.#timer.set(key, this.#timers.setTimeout(() => this.#send(key), wait));
    return true;
  }

  /** Sends the frames that wait for a connection (after a welcome). */
  flush(): void {
    for (const key of [...this.#due.keys()]) {
      this.#timers.clearTimeout(this.#timer.get(key));
      this.#send(key);
    }
  }

  /**
   * Takes a `rate_limited` answer to the frame of `cid`: frames spaced out
   * by the client can reach the server together. The position goes again
   * an interval later unless a newer one waits. False when no frame of
   * this state's has that cid.
   */
  rateLimited(cid: string): boolean {
    for (const [key, sent] of this.#sent) {
      if (sent.cid !== cid) continue;
      sent.cid = "";
      if (!this.#due.has(key)) this.#due.set(key, sent.frame);
      if (!this.#timer.has(key)) this.#sendLater(key);
      return true;
    }
    return false;
  }

  /** Cancels the paced frames' timers. */
  dispose(): void {
    for (const timer of this.#timer.values()) this.#timers.clearTimeout(timer);
    this.#timer.clear();
  }

  #send(key: string): void {
    this.#timer.delete(key);
    const frame = this.#due.get(key);
    if (frame === undefined) return;
    const cid = `read-${++this.#seq}`;
    if (!this.#write({ ...frame, cid })) {
      // Not connected, or the rate limit's tokens are spent on messages: again an interval later.
      return this.#sendLater(key);
    }
    this.#due.delete(key);
    this.#sent.set(key, { at: this.#timers.now(), cid, frame });
  }

  /** Tries the target's frame again an interval from now. */
  #sendLater(key: string): void {
    this.#timer.set(key, this.#timers.setTimeout(() => this.#send(key), READ_INTERVAL_MS));
  }

  #set(map: Map<string, ReadPosition>, key: string, position: ReadPosition): boolean {
    if (!forward(position, map.get(key))) return false;
    map.set(key, position);
    return true;
  }
}
