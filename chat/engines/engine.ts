/**
 * The contract every engine (memory, kv, redis) keeps, split as Centrifuge
 * splits it: a {@linkcode Broker} that carries opaque payloads between
 * processes, a {@linkcode History} that stores them per channel, and an
 * optional {@linkcode Presence}.
 *
 * A payload is text the engine never parses: the manager builds a frame's
 * JSON once, without its id, and splices the offset the engine assigns into
 * it. Engines know nothing of frame types, names or counts.
 *
 * A channel is a room name, {@linkcode privateChannel} or
 * {@linkcode conversationChannel} for the history of a pair of users,
 * {@linkcode userChannel} for deliveries to one user, or
 * {@linkcode readChannel} and {@linkcode conversationsChannel} for one
 * identity's read positions and list of conversations.
 *
 * Every store is bounded (see {@linkcode DEFAULT_ENGINE}): at most
 * `historyLimit` publications per channel, at most `historyMaxBytes` of
 * payloads in all (the least recently active channels lose their oldest
 * first; a channel keeps its offset counter when evicted), and a channel
 * with no publication for `roomTtlS` is deleted whole. Evicted or deleted
 * publications make a later `after` read incomplete, never wrong.
 *
 * @module
 */

/** What an engine carries and stores: a frame's JSON text, never parsed by the engine. */
export type Payload = string;

/** A place in a channel's stream: its offset and the epoch of the store that gave it. */
export interface StreamPosition {
  /** The offset of the publication; offsets of a channel are 1, 2, 3, … without gaps. */
  offset: number;
  /** Changes whenever the store lost its history: offsets of another epoch mean nothing. */
  epoch: string;
}

/** Options of {@linkcode Broker.publish}. */
export interface PublishOptions {
  /**
   * Store the payload in the channel's history and give it the next offset.
   * Without, the publish is ephemeral: delivered to the processes
   * subscribed now, with no offset, and not stored. Default false.
   */
  history?: boolean;
}

/**
 * Receives every publication of the channels this process subscribed to:
 * stored ones exactly once in offset order with their `offset`, ephemeral
 * ones without.
 */
export type Delivery = (channel: string, payload: Payload, offset?: number) => void;

/** Carries payloads to every process subscribed to a channel. */
export interface Broker {
  /** Sets the function that receives publications; call before publishing. */
  start(deliver: Delivery): Promise<void>;
  /**
   * Publishes a payload to a channel. With `history`, stores it first and
   * resolves with its position once it is durable for this engine and, when
   * this process subscribed to the channel, handed to the delivery
   * function. Rejects when the store is unavailable; then nothing was
   * delivered. Without `history`, resolves with undefined.
   */
  publish(
    channel: string,
    payload: Payload,
    options?: PublishOptions,
  ): Promise<StreamPosition | undefined>;
  /** Starts delivering the channel's publications to this process. */
  subscribe(channel: string): void;
  /** Stops delivering the channel's publications to this process. */
  unsubscribe(channel: string): void;
}

/** A query for stored publications of one channel. */
export interface HistoryQuery {
  /** Only offsets greater than this. */
  after?: number;
  /** Only offsets less than this. */
  before?: number;
  /**
   * How many publications at most. With `after`, the oldest ones after it;
   * otherwise the newest ones (before `before`).
   */
  limit: number;
}

/** One stored publication. */
export interface Publication {
  /** Its place in the channel's stream. */
  offset: number;
  /** As published. */
  payload: Payload;
}

/** A page of a channel's stream, oldest first. */
export interface HistoryPage {
  /** The publications of the page, oldest first. */
  publications: Publication[];
  /** The top of the stream: the last offset given out (0 when none) and the epoch. */
  position: StreamPosition;
  /**
   * With `after`: true when nothing between `after` and the first returned
   * publication was dropped by retention, and `after` is not beyond the top
   * (an offset of a previous life of the store). Otherwise always true.
   */
  complete: boolean;
}

/** Reads the stored publications of a channel, in pages. */
export interface History {
  /** Reads a page of a channel's stream. */
  history(channel: string, query: HistoryQuery): Promise<HistoryPage>;
}

/**
 * Whether the engine can reach its backing store: "ok"; "partial" when part
 * of it is down (a shard) and only the channels kept there fail; "degraded"
 * when it cannot store messages or find who is online.
 */
export type EngineStatus = "ok" | "partial" | "degraded";

/**
 * The defaults every engine shares: how much history a channel keeps and
 * for how long, the budget of the whole store, when an idle channel is
 * deleted, and how long a process's presence lives without a refresh. Each
 * engine spreads these into its own `DEFAULT_*` object.
 */
export const DEFAULT_ENGINE: Readonly<{
  historyLimit: number;
  historyTtlS: number;
  historyMaxBytes: number;
  roomTtlS: number;
  presenceTtlS: number;
}> = Object.freeze({
  /** Publications served from history per channel. */
  historyLimit: 1000,
  /** Seconds a publication is served from history; 0 for no limit. */
  historyTtlS: 0,
  /**
   * Bytes of stored payloads (UTF-8) in the whole store at most. Past it,
   * the oldest publications of the least recently published-to channels
   * are evicted first.
   */
  historyMaxBytes: 64 * 1024 * 1024,
  /**
   * Seconds after its last publication a channel is deleted with every key
   * it has: its history and its offset counter (its next publication gets
   * offset 1 again, so a `since` from before reads as incomplete).
   */
  roomTtlS: 7 * 24 * 60 * 60,
  /** Seconds a process's presence entries live without a refresh. */
  presenceTtlS: 30,
});

/**
 * How often an engine looks for channels past `roomTtlS`: a tenth of the
 * TTL, between one second and one minute, so a channel outlives its TTL by
 * at most a tenth of it.
 */
export function sweepIntervalMs(roomTtlS: number): number {
  return Math.min(60_000, Math.max(1000, roomTtlS * 100));
}

/** What an engine stores and has dropped to stay within its budget. */
export interface EngineStats {
  /**
   * Bytes of stored payloads (UTF-8) in the store, as this process last
   * saw them; a shared store counts every process's publications.
   */
  storedBytes: number;
  /** Publications this process evicted to keep within `historyMaxBytes`. */
  evictions: number;
  /** Channels this process deleted after `roomTtlS` without a publication. */
  expiredChannels: number;
}

/** A storage and fan-out engine. */
export interface Engine extends Broker, History, AsyncDisposable {
  /** The engine's name as in CHAT_ENGINE. */
  readonly name: string;
  /** The current epoch; valid once {@linkcode Broker.start} resolved. */
  readonly epoch: string;
  /** Whether the backing store is reachable. */
  status(): EngineStatus;
  /** Stored bytes, evictions and expired channels, for /metrics; never throws. */
  stats(): EngineStats;
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
 * them after its store comes back.
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

/** The channel whose history keeps the private messages of two users, the same both ways. */
export function privateChannel(a: string, b: string): string {
  // Names cannot contain "@" or "|", so the channel cannot collide with a room.
  return a < b ? `@${a}|${b}` : `@${b}|${a}`;
}

/**
 * The channel whose history keeps the conversation of two identities (their
 * public uids), the same both ways: only a participant can name it, since
 * the server puts the asker's own uid in.
 */
export function conversationChannel(a: string, b: string): string {
  // "=" is in neither a name nor a uid: no collision with a room or a name pair.
  return a < b ? `@=${a}|${b}` : `@=${b}|${a}`;
}

/**
 * The channel whose newest publication is one identity's (public uid's)
 * read position in a room or conversation channel.
 */
export function readChannel(uid: string, channel: string): string {
  // "^" starts no room, pair or user channel; a uid holds no "|".
  return `^${uid}|${channel}`;
}

/** The channel that lists the conversations of one identity (public uid), newest last. */
export function conversationsChannel(uid: string): string {
  return `^${uid}`;
}

/** The channel a process subscribes to for the deliveries to one user (the name's nameKey). */
export function userChannel(key: string): string {
  // "~" never starts a room or pair name.
  return `~${key}`;
}

/** Whether a channel is a user channel. */
export function isUserChannel(channel: string): boolean {
  return channel.startsWith("~");
}

/** A random epoch for a store whose history starts now. */
export function newEpoch(): string {
  return crypto.randomUUID().slice(0, 8);
}
