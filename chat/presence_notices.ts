/**
 * Join and leave notices, coalesced per room: the first one in a quiet room
 * goes at once, the ones that follow within the window go together at its
 * end, one frame for the joins and one for the leaves. A room of 100 that
 * 100 people enter in a second then costs each member one or two frames, not
 * one per arrival; a leave and a rejoin of the same user within the window
 * (a reload, a reconnect storm) cancel out and cost nothing. While several
 * come in each window, the next one doubles, up to {@linkcode MAX_WINDOW_FACTOR} times
 * its setting, so a room that thousands enter (a restart) gets a handful of
 * notices; a window that ends with nothing to send ends the burst. Each
 * window is up to a half longer at random, so rooms that filled together
 * (15,000 connections after a restart) do not all send at the same moment.
 *
 * @module
 */

import type { Scheduler, TimerHandle } from "./clock.ts";
import { nameKey } from "./names.ts";

/** The defaults of the notices' settings; PRESENCE_WINDOW_MS reads its own here. */
export const DEFAULT_PRESENCE_NOTICES: Readonly<{ presenceWindowMs: number }> = Object.freeze({
  /**
   * After a room's join or leave notice, further ones wait this long and go
   * together; 0 sends each at once.
   */
  presenceWindowMs: 1000,
});

/** How many times PRESENCE_WINDOW_MS a room's window grows to while notices keep coming. */
export const MAX_WINDOW_FACTOR = 8;

/** A presence notice's event. */
export type PresenceEvent = "join" | "leave";

/** The users one coalesced notice is about, in the order they came. */
export interface PresenceBatch {
  /** Join or leave. */
  event: PresenceEvent;
  /** The users' names as they spelled them, at least one. */
  users: string[];
}

/** What {@linkcode PresenceNotices} needs. */
export interface PresenceNoticesOptions {
  /** Runs the end-of-window timers. */
  scheduler: Scheduler;
  /** See {@linkcode DEFAULT_PRESENCE_NOTICES}. */
  presenceWindowMs: number;
  /** Publishes one notice for a batch of users. */
  send: (room: string, batch: PresenceBatch) => void;
  /** A number in [0, 1) that lengthens each window by up to a half. Default `Math.random`. */
  random?: () => number;
}

interface RoomWindow {
  /** Pending users by name key: their net event since the last notice. */
  pending: Map<string, { event: PresenceEvent; user: string }>;
  timer: TimerHandle;
  /** This window's length in milliseconds. */
  span: number;
}

/** Coalesces the join and leave notices of every room. */
export class PresenceNotices {
  #o: PresenceNoticesOptions;
  /** Rooms inside a window: a notice went less than the window ago. */
  #windows = new Map<string, RoomWindow>();

  /** Notices sent through `options.send`. */
  constructor(options: PresenceNoticesOptions) {
    this.#o = options;
  }

  /** Announces that `user` joined or left `room`: now in a quiet room, else at the window's end. */
  add(room: string, event: PresenceEvent, user: string): void {
    const window = this.#windows.get(room);
    if (window === undefined) {
      this.#o.send(room, { event, users: [user] });
      this.#open(room, this.#o.presenceWindowMs);
      return;
    }
    const key = nameKey(user);
    const earlier = window.pending.get(key);
    // The opposite of a pending event undoes it: the room's members saw neither.
    if (earlier !== undefined && earlier.event !== event) window.pending.delete(key);
    else window.pending.set(key, { event, user });
  }

  /** Sends a room's pending notices now, so a frame published next comes after them. */
  flush(room: string): void {
    if (this.#windows.size === 0) return;
    const window = this.#windows.get(room);
    if (window === undefined || window.pending.size === 0) return;
    this.#o.scheduler.clearTimeout(window.timer);
    this.#windows.delete(room);
    this.#send(room, window);
    this.#open(room, window.span);
  }

  /** Drops every pending notice and timer, for good. */
  stop(): void {
    for (const window of this.#windows.values()) this.#o.scheduler.clearTimeout(window.timer);
    this.#windows.clear();
  }

  /** Starts a room's window of `span` milliseconds, unless windows are off. */
  #open(room: string, span: number): void {
    if (span <= 0) return;
    const jitter = 1 + 0.5 * (this.#o.random ?? Math.random)();
    const timer = this.#o.scheduler.setTimeout(() => this.#close(room), Math.round(span * jitter));
    this.#windows.set(room, { pending: new Map(), timer, span });
  }

  /** A window ended: what came in it goes now, and opens a longer one. */
  #close(room: string): void {
    const window = this.#windows.get(room);
    if (window === undefined) return;
    this.#windows.delete(room);
    if (window.pending.size === 0) return;
    this.#send(room, window);
    // Several people in one window is a burst: the next window is longer. One is a chat's pace.
    const longest = this.#o.presenceWindowMs * MAX_WINDOW_FACTOR;
    const burst = window.pending.size > 1;
    this.#open(room, burst ? Math.min(window.span * 2, longest) : this.#o.presenceWindowMs);
  }

  #send(room: string, window: RoomWindow): void {
    const joins: string[] = [];
    const leaves: string[] = [];
    for (const { event, user } of window.pending.values()) {
      (event === "join" ? joins : leaves).push(user);
    }
    if (leaves.length > 0) this.#o.send(room, { event: "leave", users: leaves });
    if (joins.length > 0) this.#o.send(room, { event: "join", users: joins });
  }
}
