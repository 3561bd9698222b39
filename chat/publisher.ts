/**
 * The publisher: every frame a client or an operator sends into a room or
 * to a user goes to the engine here, serialised once, without an id; the
 * engine gives stored frames their offset and every process splices it in
 * as the `id` on delivery (see {@linkcode stampId}).
 *
 * @module
 */

import { utf8Length } from "./bytes.ts";
import type { Client } from "./client.ts";
import type { Clock, Scheduler } from "./clock.ts";
import {
  conversationChannel,
  type Engine,
  type Presence,
  privateChannel,
  type Publication,
  type PublishOptions,
  userChannel,
} from "./engines/engine.ts";
import type { Logger } from "./logger.ts";
import { LogThrottle } from "./log_throttle.ts";
import type { Metrics } from "./metrics.ts";
import type { Outbox } from "./outbox.ts";
import { presenceText } from "./notices.ts";
import {
  DEFAULT_PRESENCE_NOTICES,
  type PresenceBatch,
  type PresenceEvent,
  PresenceNotices,
} from "./presence_notices.ts";
import {
  type Draft,
  ErrorCode,
  type StoredFrame,
  SYSTEM_SENDER,
  type SystemEvent,
  type SystemFrame,
} from "./protocol.ts";
import type { Registry } from "./registry.ts";

/** The options of every stored publish: one object, not one per message. */
const STORED: PublishOptions = Object.freeze({ history: true });
/** Delivered to the room's members now, not stored. */
const LIVE: PublishOptions = Object.freeze({ history: false });

/**
 * A stored payload as sent: the offset spliced in as the frame's `id`, so
 * that the JSON built once by the publisher travels unparsed. Every frame
 * the manager publishes starts with its `"type"`, whose value has no comma:
 * the id goes right after it, where clients that match on the leading
 * `{"type":"message"` still find it.
 */
export function stampId(offset: number, payload: string): string {
  const at = payload.indexOf(",");
  if (at < 0) {
    return payload.length > 2 ? payload.slice(0, -1) + ',"id":' + offset + "}" : `{"id":${offset}}`;
  }
  return payload.slice(0, at + 1) + '"id":' + offset + "," + payload.slice(at + 1);
}

/**
 * Stored publications stamped with their ids, oldest first: as many as fit
 * in `maxBytes` (at least one; a comma counted after each), keeping the
 * oldest (a recovery, read forward) or the newest (the latest page).
 */
export function stampedTexts(
  publications: readonly Publication[],
  fit: { maxBytes: number; keep: "oldest" | "newest" },
): string[] {
  const newest = fit.keep === "newest";
  const texts: string[] = [];
  let bytes = 0;
  for (let n = 0; n < publications.length; n++) {
    const { offset, payload } = publications[newest ? publications.length - 1 - n : n]!;
    const text = stampId(offset, payload);
    bytes += utf8Length(text) + 1;
    if (texts.length > 0 && bytes > fit.maxBytes) break;
    texts.push(text);
  }
  return newest ? texts.reverse() : texts;
}

/** The defaults of the publisher's settings; ROOM_PRESENCE_LIMIT reads its own here. */
export const DEFAULT_PUBLISHER: Readonly<{ roomPresenceLimit: number; presenceWindowMs: number }> =
  Object.freeze({
    ...DEFAULT_PRESENCE_NOTICES,
    /**
     * Members of a room (on every process, as last read; its connections on
     * this process when more) up to which joins and leaves are announced; a
     * bigger room is told none (each would cost a frame to every member), and
     * its lists of names are paged at this size.
     */
    roomPresenceLimit: 100,
  });

/** What the publisher needs from the manager. */
export interface PublisherOptions {
  /** The manager's engine. */
  engine: Engine;
  /** Who is where. */
  registry: Registry;
  /** Writes to and closes sockets. */
  outbox: Outbox;
  /** The manager's clock. */
  clock: Clock;
  /** Runs the timers of coalesced join and leave notices. */
  scheduler: Scheduler;
  /** Where events are logged. */
  log: Logger;
  /** The counters to update. */
  metrics: Metrics;
  /** See {@linkcode DEFAULT_PUBLISHER}. */
  roomPresenceLimit: number;
  /** See {@linkcode DEFAULT_PRESENCE_NOTICES}. */
  presenceWindowMs: number;
  /**
   * A room's users on every process as last read, for the notices' limit;
   * absent on an engine of one process, whose rooms are all here.
   */
  roomSize?: (room: string) => number | undefined;
}

/** Publishes room messages, private messages and system notices. */
export class Publisher {
  #o: PublisherOptions;
  #engine: Engine;
  #presence: Presence | undefined;
  /**
   * Rooms with a notice waiting for its count: their publishes wait behind
   * it, so the notice keeps its place in the room's order.
   */
  #noticeWaits = new Map<string, Promise<void>>();
  /** Created on the first failure, so a manager that never fails pays nothing. */
  #failures: LogThrottle | undefined;
  #notices: PresenceNotices;

  /** A publisher to the options' engine. */
  constructor(options: PublisherOptions) {
    this.#o = options;
    this.#engine = options.engine;
    this.#presence = options.engine.presence;
    this.#notices = new PresenceNotices({
      scheduler: options.scheduler,
      presenceWindowMs: options.presenceWindowMs,
      send: (room, batch) => this.#presenceNotice(room, batch),
    });
  }

  /** Drops the join and leave notices still waiting for their window, and their timers. */
  stop(): void {
    this.#notices.stop();
  }

  /** Stores a client's room message and fans it out; a failure is the client's `error`. */
  publish(client: Client, room: string, draft: Draft): void {
    // Whoever joined before the message is announced before it.
    this.#notices.flush(room);
    const waiting = this.#noticeWaits.size === 0 ? undefined : this.#noticeWaits.get(room);
    // Behind the notice it waited for only: a notice queued later is also later in the room.
    if (waiting !== undefined) waiting.then(() => this.#store(client, room, draft));
    else this.#store(client, room, draft);
  }

  #store(client: Client, room: string, draft: Draft): void {
    const started = performance.now();
    this.#engine.publish(room, JSON.stringify(draft), STORED).then(
      () => this.#o.metrics.observeFanout((performance.now() - started) / 1000),
      (error) => this.#failed(client, { channel: room, error, draft }),
    );
  }

  /**
   * Stores a private message in the history of its pair, then stores the
   * stamped frame in the user channels of the recipient and the sender
   * (the sender's echo is the acknowledgement). Stored, not ephemeral: each
   * engine's catch-up (a redis reconnect, the kv follower) then delivers
   * every user channel exactly once in its offset order. Two messages of one
   * pair from two processes at once may reach the user channels in the other
   * order than their pair ids; from one process they keep it.
   */
  publishPrivate(client: Client, toKey: string, draft: Draft): void {
    const started = performance.now();
    const payload = JSON.stringify(draft);
    // Between two known identities the conversation is kept by their uids, so it can be read
    // again (a reload, another tab) by them alone, not by whoever holds a name later.
    const toUid = draft.type === "private" ? draft.to_uid : undefined;
    const pair = toUid === undefined
      ? privateChannel(client.key, toKey)
      : conversationChannel(client.uid, toUid);
    this.#engine.publish(pair, payload, STORED).then((position) => {
      const text = stampId(position!.offset, payload);
      const sends = [this.#engine.publish(userChannel(toKey), text, STORED)];
      if (toKey !== client.key) {
        sends.push(this.#engine.publish(userChannel(client.key), text, STORED));
      }
      return Promise.all(sends);
    }).then(
      () => this.#o.metrics.observeFanout((performance.now() - started) / 1000),
      (error) => this.#failed(client, { channel: pair, error, draft }),
    );
  }

  /** Logs a failed publish (during an outage one line per interval) and tells the client. */
  #failed(client: Client, failure: { channel: string; error: unknown; draft: Draft }): void {
    this.#failures ??= new LogThrottle({ logger: this.#o.log, clock: this.#o.clock });
    const { channel, error, draft } = failure;
    this.#failures.warn("publish_failed", { channel, error: String(error) });
    const cid = draft.type === "system" ? undefined : draft.cid;
    const message = "Message not stored; try again";
    this.#o.outbox.sendError(client, { code: ErrorCode.Unavailable, message, cid });
  }

  /** Publishes a system notice to a room (stored like any room frame); resolves with it. */
  announce(room: string, event: SystemEvent, message: string, user?: string): Promise<StoredFrame> {
    return this.publishNotice(room, this.systemDraft(room, event, message, user));
  }

  /**
   * Announces a join or leave, live only: it is not stored, so a room's
   * history holds its conversation and not a join and a leave for every
   * reload or restart. Notices that follow one within the window are
   * coalesced (see {@linkcode PresenceNotices}); a room with more members
   * than ROOM_PRESENCE_LIMIT is told none. A failure is logged.
   */
  notify(room: string, event: PresenceEvent, user: string): void {
    const stay = this.#o.registry.rooms.get(room)?.size ?? 0;
    // Counted with the member who leaves: a room is big while it has more than the limit.
    const here = stay + (event === "leave" ? 1 : 0);
    // Each process counts the whole room: fifty processes of 99 members are a room of 4,950.
    const everywhere = this.#o.roomSize?.(room) ?? 0;
    if (Math.max(here, everywhere) > this.#o.roomPresenceLimit) return;
    // The last one out of a single process's room tells nobody. With several processes the
    // room's users are read now and then: someone may have come in elsewhere since.
    if (stay === 0 && this.#o.roomSize === undefined) return;
    this.#notices.add(room, event, user);
  }

  /** Publishes one notice for a batch of joins or leaves: `user` the first, `users` all when more. */
  #presenceNotice(room: string, batch: PresenceBatch): void {
    const { event, users } = batch;
    const draft = this.systemDraft(room, event, presenceText(event, users), users[0]);
    if (users.length > 1) draft.users = users;
    this.#publishNotice(room, { draft, options: LIVE }).catch((error) =>
      this.noticeFailed(room, error)
    );
  }

  /**
   * Publishes a frame live only (typing): delivered to the channel's
   * members now, never stored; a failure is dropped, as the next one replaces it.
   */
  live(channel: string, frame: object): void {
    this.#engine.publish(channel, JSON.stringify(frame), LIVE).catch(() => {});
  }

  /** Logs a notice that could not be published. */
  noticeFailed(room: string, error: unknown): void {
    this.#o.log.warn("notice_failed", { room, error: String(error) });
  }

  /** A system notice's draft, counting the room's local users. */
  systemDraft(
    room: string,
    event: SystemEvent,
    message: string,
    user?: string,
  ): Draft<SystemFrame> {
    return {
      type: "system",
      room,
      event,
      message,
      username: SYSTEM_SENDER,
      sender: SYSTEM_SENDER,
      ...(user === undefined ? {} : { user }),
      connected_count: this.#o.registry.userCount(room),
      timestamp: new Date(this.#o.clock.now()).toISOString(),
    };
  }

  /**
   * Stores and fans out a system notice; its `connected_count` counts the
   * room's users on every process when the engine has presence (never less
   * than the local count, which the draft holds).
   */
  publishNotice(room: string, draft: Draft<SystemFrame>): Promise<StoredFrame> {
    // Whoever joined before it (a rename, a kick) is announced before it.
    this.#notices.flush(room);
    return this.#publishNotice(room, { draft, options: STORED });
  }

  /**
   * Publishes a notice once its count is known; the room's publishes wait
   * behind it. A live-only notice travels apart from the room's stored
   * frames (the kv engine commits and follows it on a stream of its own),
   * so they wait until it was handed on here, not only until it was sent.
   */
  #publishNotice(
    room: string,
    notice: { draft: Draft<SystemFrame>; options: PublishOptions },
  ): Promise<StoredFrame> {
    const { draft, options } = notice;
    const presence = this.#presence;
    if (presence === undefined) return this.#storeNotice(room, notice);
    let stored: Promise<StoredFrame> | undefined;
    const before = this.#noticeWaits.get(room) ?? Promise.resolve();
    const wait: Promise<void> = before.then(() => presence.users(room)).catch(() => undefined)
      .then((users) => {
        const count = users === undefined ? 0 : this.#o.registry.usersWith(room, users).length;
        if (count > draft.connected_count) draft.connected_count = count;
        stored = this.#storeNotice(room, notice);
        return options.history === true ? undefined : stored.then(() => undefined, () => undefined);
      })
      .then(() => {
        if (this.#noticeWaits.get(room) === wait) this.#noticeWaits.delete(room);
      });
    this.#noticeWaits.set(room, wait);
    return wait.then(() => stored!);
  }

  /** Publishes a notice as it is; the engine takes it in call order. */
  async #storeNotice(
    room: string,
    notice: { draft: Draft; options: PublishOptions },
  ): Promise<StoredFrame> {
    const payload = JSON.stringify(notice.draft);
    const position = await this.#engine.publish(room, payload, notice.options);
    return JSON.parse(position ? stampId(position.offset, payload) : payload) as StoredFrame;
  }
}
