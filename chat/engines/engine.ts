/**
 * The storage and fan-out contract every engine (memory, kv, redis) keeps.
 *
 * An engine assigns ids, stores frames and delivers every committed frame to
 * every process that subscribed to its channel, exactly once and in id order
 * per channel. It knows nothing of sockets: the ConnectionManager turns
 * deliveries into sends.
 *
 * A channel is a room name, or {@linkcode privateChannel} for a pair of users.
 *
 * @module
 */

import type { StoredFrame } from "../protocol.ts";

/** A frame before the engine gives it an id. */
export type Draft<F extends StoredFrame = StoredFrame> = F extends StoredFrame ? Omit<F, "id">
  : never;

/**
 * Receives every committed frame of the channels this process subscribed to;
 * `text`, the frame's JSON, when the engine already has it, so that a frame
 * is serialised once.
 */
export type Delivery = (channel: string, frame: StoredFrame, text?: string) => void;

/** A query for stored frames of one channel. */
export interface HistoryQuery {
  /** Only frames with an id greater than this. */
  after?: number;
  /** Only frames with an id less than this. */
  before?: number;
  /**
   * How many frames at most. With `after`, the oldest ones after it;
   * otherwise the newest ones (before `before`).
   */
  limit: number;
}

/** Stored frames, oldest first. */
export interface HistoryPage {
  frames: StoredFrame[];
  /**
   * With `after`: true when nothing between `after` and the first returned
   * frame was dropped by retention (no gap). Otherwise always true.
   */
  complete: boolean;
}

/** Stored frames as the JSON text the engine keeps, oldest first. */
export interface TextPage {
  /** Each frame's JSON. */
  texts: string[];
  /** The id of the last frame in `texts`; 0 when there is none. */
  lastId: number;
  /** As in {@linkcode HistoryPage}. */
  complete: boolean;
}

/** Whether the engine can reach its backing store. */
export type EngineStatus = "ok" | "degraded";

/** The contract of a storage and fan-out engine. */
export interface Engine extends AsyncDisposable {
  /** The engine's name as in CHAT_ENGINE. */
  readonly name: string;
  /** Sets the function that receives committed frames; call before publishing. */
  start(deliver: Delivery): Promise<void>;
  /**
   * Assigns the next id of the channel, commits the frame and delivers it.
   * Resolves with the stored frame once it is durable for this engine.
   * Rejects when the store is unavailable; then nothing was delivered.
   */
  publish(channel: string, draft: Draft): Promise<StoredFrame>;
  /**
   * The same as {@linkcode Engine.publish} for an engine that commits at
   * once: returns the stored frame, or throws when the store is unavailable.
   * Takes ownership of `draft` and may return it, with its id set, as the
   * stored frame. Optional: the manager uses it when present, since a
   * promise and its callbacks per message lengthen GC pauses at the tail.
   */
  publishSync?(channel: string, draft: Draft): StoredFrame;
  /** Reads stored frames of a channel. */
  history(channel: string, query: HistoryQuery): Promise<HistoryPage>;
  /**
   * The same frames as {@linkcode Engine.history}, as their JSON, for an
   * engine that keeps it: a `welcome` then splices them in without parsing
   * and serialising each frame again. Optional.
   */
  historyText?(channel: string, query: HistoryQuery): Promise<TextPage>;
  /** Starts delivering the channel's frames to this process. */
  subscribe(channel: string): void;
  /** Stops delivering the channel's frames to this process. */
  unsubscribe(channel: string): void;
  /** Whether the backing store is reachable. */
  status(): EngineStatus;
  /**
   * Who is online across every process sharing the store; absent when the
   * engine serves one process only (then the manager's registry is the truth).
   */
  readonly presence?: Presence;
}

/** A user online on some process, as {@linkcode Presence.lookup} finds it. */
export interface Holder {
  /** The name as its holder spells it. */
  username: string;
  /** The holder's verified user id; null for a name without a token. */
  userId: string | null;
}

/**
 * The optional cross-process presence part of an engine. The recording
 * methods never throw and return at once: the engine sends them in call
 * order, keeps its own members alive with a TTL it refreshes, and restores
 * them after its store comes back. An engine with presence also replaces
 * the `connected_count` of every `system` frame it publishes with the count
 * of the room's users on every process (never less than the given one).
 */
export interface Presence {
  /** Records that a user of this process entered a room (the user's first tab there). */
  join(room: string, username: string): void;
  /** Records that a user of this process left a room (the user's last tab there). */
  leave(room: string, username: string): void;
  /**
   * Records that a user connected to this process (the name's first
   * connection), with the verified user id it holds the name under, if any.
   */
  connect(username: string, userId?: string | null): void;
  /** Records that the last connection of a user to this process closed. */
  disconnect(username: string): void;
  /** Users in a room on every process, each once; rejects when the store is unavailable. */
  users(room: string): Promise<string[]>;
  /**
   * The holder of a name online on any process, matched by its nameKey;
   * undefined when offline. Rejects when the store is unavailable.
   */
  lookup(username: string): Promise<Holder | undefined>;
}

/** The channel of private messages between two users, the same both ways. */
export function privateChannel(a: string, b: string): string {
  // Names cannot contain "@" or "|", so the channel cannot collide with a room.
  return a < b ? `@${a}|${b}` : `@${b}|${a}`;
}

/**
 * The channel a process subscribes to for the private messages of a user
 * (the name's nameKey). Engines deliver a pair channel's frame to the
 * subscribers of the user channels of its `username` and its `to`.
 */
export function userChannel(key: string): string {
  return `~${key}`;
}

/** Whether a channel is a private pair channel. */
export function isPrivateChannel(channel: string): boolean {
  return channel.startsWith("@");
}
