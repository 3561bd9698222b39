/**
 * Replay: a client entering a room gets the room's history in its `welcome`
 * (its first frame) or `joined`, and a resume gets what it missed. The
 * room's live frames wait in the client's backlog meanwhile, so nothing is
 * lost or sent twice between the history and the live stream.
 *
 * No frame carries more than `replayMaxBytes` of history: a longer replay
 * goes on in `history` frames, each read from the engine and sent only once
 * the socket has sent most of the previous one, so a client recovering a
 * thousand large messages is neither flooded nor dropped as a slow
 * consumer, and the server holds one page per replay, not the whole of it.
 *
 * @module
 */

import type { BacklogItem, Client } from "./client.ts";
import type { Clock, Scheduler, TimerHandle } from "./clock.ts";
import { conversationChannel, type Engine } from "./engines/engine.ts";
import type { Logger } from "./logger.ts";
import type { Outbox } from "./outbox.ts";
import type { PresenceCache } from "./presence_cache.ts";
import { historyText, joinedText, welcomeText } from "./notices.ts";
import {
  ErrorCode,
  type HistoryFrame,
  type JoinedFrame,
  SYSTEM_SENDER,
  type WelcomeFrame,
} from "./protocol.ts";
import { type Publisher, stampedTexts } from "./publisher.ts";
import type { Registry, UsersPage } from "./registry.ts";
import { type Stamped, stamped, TailCache } from "./tail_cache.ts";

/** Replay's defaults, as {@linkcode ConnectionManagerOptions} names them. */
export const DEFAULT_REPLAY: Readonly<{ historyOnJoin: number; replayMaxBytes: number }> = Object
  .freeze({
    /** Messages of history in `welcome` and `joined`. */
    historyOnJoin: 50,
    /**
     * Bytes of history in one `welcome`, `joined` or `history` frame; a
     * longer replay goes on in further frames as the socket drains.
     */
    replayMaxBytes: 256 * 1024,
  });

/** What replay needs from the manager. */
export interface ReplayOptions {
  /** The manager's engine. */
  engine: Engine;
  /** Who is where. */
  registry: Registry;
  /** Writes to and closes sockets. */
  outbox: Outbox;
  /** Publishes to the engine. */
  publisher: Publisher;
  /** The manager's clock. */
  clock: Clock;
  /** Polls a socket's send buffer between pages. */
  scheduler: Scheduler;
  /** Where events are logged. */
  log: Logger;
  /** See {@linkcode DEFAULT_REPLAY}. */
  historyOnJoin: number;
  /** See {@linkcode DEFAULT_REPLAY}. */
  replayMaxBytes: number;
  /** Messages replayed at most on recovery. */
  historyLimit: number;
  /** The ping cadence of the heartbeat route, told in `welcome`. */
  heartbeatIntervalMs: number;
  /** The silence after which a heartbeat client is closed, told in `welcome`. */
  heartbeatTimeoutMs: number;
  /** The largest frame a client may send, told in `welcome`. */
  maxMessageBytes: number;
  /** The frames a client may send per second, told in `welcome`. */
  rateLimitPerS: number;
  /** The frames a client may send at once, told in `welcome`. */
  rateLimitBurst: number;
  /** Names listed in `welcome` and `joined` at most; `user_count` counts them all. */
  roomPresenceLimit: number;
  /** The rooms' users on every process; undefined when the engine serves one process. */
  presence?: PresenceCache;
  /**
   * Called once a room's `welcome` or `joined`, or a `conversation`, went
   * out: what follows it (read positions) comes after it.
   */
  afterStart?: (client: Client, target: { room: string } | { with: string }) => void;
}

/**
 * A `since` whose epoch is not the engine's: offsets of a store that lost
 * its history recover nothing, so the recent tail goes out with
 * `recovered: false`.
 */
const STALE_SINCE = -1;
/** How often a socket's send buffer is looked at while a replay waits for it. */
const DRAIN_POLL_MS = 25;
/** Publications read by a recovery's first page; later pages follow their average size. */
const FIRST_READ = 64;

/** A replay in progress: one client, one room. */
interface Pager {
  client: Client;
  room: string;
  /** The last id the client saw, if it said (or {@linkcode STALE_SINCE}). */
  since: number | undefined;
  /** The first frame is a `welcome` rather than a `joined`; false once it is sent. */
  welcome: boolean;
  /** Whether the first frame (`welcome` or `joined`) went out. */
  started: boolean;
  /** Whether nothing between `since` and the history was lost. */
  complete: boolean;
  /** Read and not yet sent, oldest first. */
  buffer: Stamped[];
  /** The offset after which the next read starts. */
  readAfter: number;
  /** Publications still allowed to be read. */
  readLeft: number;
  /** Bytes and count read so far, for the size of the next read. */
  readBytes: number;
  readCount: number;
  /** The engine has nothing more (or the read failed). */
  exhausted: boolean;
  /** The highest id sent: live frames up to it are in the history already. */
  sent: number;
  /** The users of the room on every process, when the engine has presence. */
  everywhere: Promise<string[] | undefined> | undefined;
}

/**
 * Serialises a frame whose `history` is empty with the given frames' JSON
 * in it. The key `"history":[]` can only be that key: quotes inside strings
 * are escaped.
 */
function spliceHistory(
  frame: WelcomeFrame | JoinedFrame | HistoryFrame,
  texts: readonly string[],
): string {
  // A function, so `$` in the texts is not a replacement pattern.
  return JSON.stringify(frame).replace('"history":[]', () => `"history":[${texts.join(",")}]`);
}

/**
 * A `joined` frame whose history is spliced in later (empty here), listing
 * the page of the room's users it is given (at most ROOM_PRESENCE_LIMIT)
 * and counting them all.
 */
export function joinedFrame(
  f: Omit<JoinedFrame, "type" | "history" | "sender" | "message" | "users" | "user_count"> & {
    username: string;
    users: UsersPage;
  },
): JoinedFrame {
  const { username, room, users, recovered, epoch, more } = f;
  return {
    type: "joined",
    room,
    users: users.users,
    user_count: users.count,
    history: [],
    recovered,
    epoch,
    more,
    sender: SYSTEM_SENDER,
    message: joinedText(username, room, users),
  };
}

/** Sends history to clients entering or resuming rooms. */
export class Replay {
  #o: ReplayOptions;
  /** The rooms' users on every process, read once for a burst of welcomes. */
  #presence: PresenceCache | undefined;
  /** The rooms' recent tails, stamped once for a burst of first visits. */
  #tails: TailCache;
  /** Replays waiting for a socket to drain, with their timers. */
  #waiting = new Map<Pager, TimerHandle>();
  /** Publications read at most at once: a page's worth of 1 KB frames. */
  #maxRead: number;

  /** Replay from the options' engine. */
  constructor(options: ReplayOptions) {
    this.#o = options;
    this.#presence = options.presence;
    const { engine, clock, historyOnJoin: limit } = options;
    this.#tails = new TailCache({ engine, clock, limit });
    this.#maxRead = Math.max(16, Math.floor(options.replayMaxBytes / 1024));
  }

  /** A stored publication of `channel` reached this process: a first visit reads the room anew. */
  stored(channel: string): void {
    this.#tails.stored(channel);
  }

  /** The engine's epoch, which every `since` is relative to. */
  get epoch(): string {
    return this.#o.engine.epoch;
  }

  /** `since`, or a stale mark when the client's epoch is not the engine's. */
  since(since: number | undefined, epoch: string | undefined): number | undefined {
    if (since === undefined || epoch === undefined || epoch === this.#o.engine.epoch) return since;
    return STALE_SINCE;
  }

  /** Adds the client to a room, announces a first tab, and sends the history. */
  enter(client: Client, room: string, since: number | undefined, welcome: boolean): void {
    // Before the notice: an engine may deliver it at once, and it must wait with the room's frames.
    this.#hold(client, room);
    if (this.#o.registry.join(client, room)) {
      // After the registry's presence join, so its connected_count includes the user.
      this.#o.publisher.notify(room, "join", client.username);
    }
    this.replay(client, room, since, welcome);
  }

  /**
   * Reads a room's history (the recent tail, or what followed `since`) and
   * sends it as `welcome` or `joined`, then in `history` frames; the room's
   * live frames wait meanwhile.
   */
  replay(client: Client, room: string, since: number | undefined, welcome: boolean): void {
    this.#hold(client, room);
    const recovery = since !== undefined && since !== STALE_SINCE;
    const pager: Pager = {
      client,
      room,
      since,
      welcome,
      started: false,
      complete: true,
      buffer: [],
      readAfter: recovery ? since : 0,
      readLeft: recovery ? this.#o.historyLimit : 0,
      readBytes: 0,
      readCount: 0,
      exhausted: !recovery,
      sent: since !== undefined && since > 0 ? since : 0,
      everywhere: this.#presence?.users(room),
    };
    // A first visit or a stale `since` gets the recent tail, read whole: it is HISTORY_ON_JOIN long.
    const first = recovery
      ? this.#read(pager)
      : this.#tails.tail(room, this.#o.registry.rooms.get(room)).then(
        (tail) => this.#add(pager, tail),
        (error) => this.#failed(pager, error),
      );
    first.then(() => this.#run(pager));
  }

  /** Stops every replay waiting for a socket to drain (shutdown). */
  dispose(): void {
    for (const timer of this.#waiting.values()) this.#o.scheduler.clearTimeout(timer);
    this.#waiting.clear();
  }

  /** Makes the room's live frames wait in the client's backlog. */
  #hold(client: Client, room: string): void {
    (client.replaying ??= new Set()).add(room);
    if (client.backlog === null) client.backlog = [];
  }

  /** Reads the next publications of a recovery, as many as a page likely holds. */
  #read(p: Pager): Promise<void> {
    const average = p.readCount === 0 ? 0 : p.readBytes / p.readCount;
    const wanted = average === 0
      ? FIRST_READ
      : Math.floor((this.#o.replayMaxBytes - this.#buffered(p)) / average);
    const limit = Math.max(1, Math.min(wanted, this.#maxRead, p.readLeft));
    const query = { after: p.readAfter, limit };
    return this.#o.engine.history(p.room, query).then((page) => {
      if (p.readCount === 0) p.complete = page.complete;
      this.#add(p, page.publications.map(({ offset, payload }) => stamped(offset, payload)));
      p.readLeft -= page.publications.length;
      if (page.publications.length < limit || p.readLeft <= 0) p.exhausted = true;
    }, (error) => this.#failed(p, error));
  }

  /** Adds stamped publications, oldest first, to the buffer. */
  #add(p: Pager, read: readonly Stamped[]): void {
    for (const s of read) {
      p.buffer.push(s);
      p.readBytes += s.bytes;
      p.readCount++;
      p.readAfter = s.id;
    }
  }

  /** A failed read ends the replay with what was read; a first read failing recovers nothing. */
  #failed(p: Pager, error: unknown): void {
    this.#o.log.warn("history_failed", { room: p.room, error: String(error) });
    if (p.readCount === 0) p.complete = false;
    p.exhausted = true;
  }

  #buffered(p: Pager): number {
    let bytes = 0;
    for (const s of p.buffer) bytes += s.bytes;
    return bytes;
  }

  /** Runs the next step of a replay; a failure ends it with a log line, not a crash. */
  #run(p: Pager): void {
    this.#pump(p).catch((error) => {
      this.#o.log.error("replay_failed", { room: p.room, error: String(error) });
    });
  }

  /** Whether the replay is over: the client closed or left the room. */
  #gone(p: Pager): boolean {
    if (p.client.closing) return true;
    if (p.client.rooms.includes(p.room)) return false;
    // Left mid-replay: the room's held frames go, and a later join replays anew.
    this.#release(p.client, p.room, Infinity);
    return true;
  }

  /** Sends the next page once it is read and the socket drained; the last one releases the room. */
  async #pump(p: Pager): Promise<void> {
    const { client, room } = p;
    if (this.#gone(p)) return;
    while (!p.exhausted && this.#buffered(p) < this.#o.replayMaxBytes) await this.#read(p);
    if (this.#gone(p)) return;
    const page = this.#page(p);
    const more = p.buffer.length > 0 || !p.exhausted;
    if (!p.started) {
      const users = await p.everywhere;
      if (this.#gone(p)) return;
      this.#start(p, page, more, users);
    } else {
      const frame: HistoryFrame = {
        type: "history",
        room,
        history: [],
        more,
        sender: SYSTEM_SENDER,
        message: historyText(room, page.length, more),
      };
      this.#o.outbox.sendText(client, spliceHistory(frame, page));
    }
    if (!more) return this.#release(client, room, p.sent);
    this.#whenDrained(p);
  }

  /** Takes up to `replayMaxBytes` of frames (at least one) off the buffer. */
  #page(p: Pager): string[] {
    const texts: string[] = [];
    let bytes = 0;
    while (p.buffer.length > 0) {
      const next = p.buffer[0]!;
      if (texts.length > 0 && bytes + next.bytes > this.#o.replayMaxBytes) break;
      p.buffer.shift();
      texts.push(next.text);
      bytes += next.bytes + 1;
      p.sent = Math.max(p.sent, next.id);
    }
    return texts;
  }

  /**
   * Sends `client` its conversation with `other` (a uid): the latest
   * messages, or those after `since`, at most REPLAY_MAX_BYTES. The channel
   * holds the client's own uid, so no one reads a conversation not theirs.
   */
  conversation(client: Client, other: string, since: number | undefined): void {
    const o = this.#o;
    const limit = since === undefined ? o.historyOnJoin : o.historyLimit;
    const query = since === undefined ? { limit } : { after: since, limit };
    o.engine.history(conversationChannel(client.uid, other), query).then((page) => {
      if (client.closing) return;
      // After `since`, read forward: the rest comes when asked for again.
      const keep = since === undefined ? "newest" : "oldest";
      const texts = stampedTexts(page.publications, { maxBytes: o.replayMaxBytes, keep });
      const more = texts.length < page.publications.length ||
        (since !== undefined && page.publications.length === limit);
      const head = JSON.stringify({
        type: "conversation",
        with: other,
        recovered: page.complete,
        more,
        epoch: page.position.epoch,
      });
      o.outbox.sendText(client, `${head.slice(0, -1)},"history":[${texts.join(",")}]}`);
      o.afterStart?.(client, { with: other });
    }, () => {
      const message = "Conversation not available; try again";
      if (!client.closing) o.outbox.sendError(client, { code: ErrorCode.Unavailable, message });
    });
  }

  /** Sends the `welcome` or `joined` with the first page. */
  #start(p: Pager, texts: string[], more: boolean, everywhere?: readonly string[]): void {
    const { client, room, since } = p;
    p.started = true;
    const registry = this.#o.registry;
    const limit = this.#o.roomPresenceLimit;
    let users: UsersPage;
    if (everywhere === undefined) users = registry.usersPage(room, limit);
    else {
      const all = registry.usersWith(room, everywhere);
      users = { users: all.slice(0, limit), count: all.length };
    }
    const recovered = since === undefined ? true : since !== STALE_SINCE && p.complete;
    const epoch = this.#o.engine.epoch;
    const frame: WelcomeFrame | JoinedFrame = p.welcome
      ? this.#welcome(client, { room, users, recovered, more })
      : joinedFrame({
        username: client.username,
        room,
        users,
        recovered,
        epoch,
        more,
      });
    this.#o.outbox.sendText(client, spliceHistory(frame, texts));
    if (p.welcome) client.welcomed = true;
    this.#o.afterStart?.(client, { room });
  }

  /** Sends the next page once the socket holds less than a page unsent. */
  #whenDrained(p: Pager): void {
    if (p.client.closing) return;
    if (this.#o.outbox.unsent(p.client) <= this.#o.replayMaxBytes) return this.#run(p);
    const timer = this.#o.scheduler.setTimeout(() => {
      this.#waiting.delete(p);
      this.#whenDrained(p);
    }, DRAIN_POLL_MS);
    this.#waiting.set(p, timer);
  }

  #welcome(
    client: Client,
    f: { room: string; users: UsersPage; recovered: boolean; more: boolean },
  ): WelcomeFrame {
    const w = this.#o;
    return {
      type: "welcome",
      id: client.id,
      username: client.username,
      room: f.room,
      users: f.users.users,
      user_count: f.users.count,
      heartbeat: client.heartbeat
        ? { interval_ms: w.heartbeatIntervalMs, timeout_ms: w.heartbeatTimeoutMs }
        : null,
      server_time: new Date(w.clock.now()).toISOString(),
      history: [],
      recovered: f.recovered,
      epoch: w.engine.epoch,
      limits: {
        max_message_bytes: w.maxMessageBytes,
        rate_per_s: w.rateLimitPerS,
        burst: w.rateLimitBurst,
      },
      more: f.more,
      sender: SYSTEM_SENDER,
      message: welcomeText(client.username, f.room, f.users),
      uid: client.uid,
    };
  }

  /**
   * Sends the backlog the room's history did not hold (a live-only notice,
   * id 0, is never in it; an Infinity cursor drops the room's frames);
   * frames of rooms still replaying wait.
   */
  #release(client: Client, room: string, cursor: number): void {
    const replaying = client.replaying;
    replaying?.delete(room);
    const rest: BacklogItem[] = [];
    for (const item of client.backlog ?? []) {
      if (item.channel === room) {
        if (item.id > cursor || (item.id === 0 && cursor < Infinity)) {
          this.#o.outbox.sendText(client, item.text);
        }
      } else if (replaying?.has(item.channel)) {
        rest.push(item);
      } else {
        this.#o.outbox.sendText(client, item.text);
      }
    }
    if (replaying === null || replaying.size === 0) {
      client.replaying = null;
      client.backlog = null;
      client.backlogBytes = 0;
    } else {
      client.backlog = rest;
    }
  }
}
