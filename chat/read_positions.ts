/**
 * Read positions, read receipts and the list of conversations of each
 * identity (a token's `sub` or a browser key, by public uid).
 *
 * A position is stored as the newest publication of its own channel
 * ({@linkcode readChannel}): a `read` that moves it forward publishes it
 * there and, live only, to the person's other tabs (`read`) and in a
 * conversation to the other person (`seen`). Reading one back is a history
 * read of one publication. A conversation is listed in each participant's
 * {@linkcode conversationsChannel} when this process first carries a
 * message of the pair (again after {@linkcode INDEXED_PAIRS} others), so the
 * list survives reloads, other devices and restarts of stored engines.
 *
 * @module
 */

import type { Client } from "./client.ts";
import {
  conversationChannel,
  conversationsChannel,
  type Engine,
  type Presence,
  readChannel,
  userChannel,
} from "./engines/engine.ts";
import type { Clock } from "./clock.ts";
import { LogThrottle } from "./log_throttle.ts";
import type { Logger } from "./logger.ts";
import type { Outbox } from "./outbox.ts";
import type { Publisher } from "./publisher.ts";
import {
  CONVERSATIONS_LISTED,
  type ConversationSummary,
  ErrorCode,
  nameKey,
  type ReadFrame,
} from "./protocol.ts";
import type { Registry } from "./registry.ts";
import { publicUserId } from "./user_ids.ts";

/**
 * Pairs whose conversation this process has listed lately and does not
 * list again: a bound on its memory, and on the listing writes (one per
 * pair per this many others).
 */
export const INDEXED_PAIRS = 10_000;

/** Index entries read to build a `conversations` answer: more than are listed, as pairs repeat. */
const INDEX_READ = 200;

/** Where a position is: a room the client is in, or a conversation with a uid. */
export type ReadTarget = { room: string } | { with: string; to?: string };

/** A position in a channel's stream. */
interface Position {
  id: number;
  epoch: string;
}

/** What read positions need from the manager. */
export interface ReadPositionsOptions {
  /** Stores the positions. */
  engine: Engine;
  /** Passes frames on live. */
  publisher: Publisher;
  /** Writes to sockets. */
  outbox: Outbox;
  /** Finds the other person of a conversation on this process. */
  registry: Registry;
  /** Finds them on another process. */
  presence: Presence | undefined;
  /** Where failures are logged. */
  log: Logger;
  /** Paces the failure lines. */
  clock: Clock;
}

/** The channel of a target for a client: the room, or the client's conversation with the uid. */
function channelOf(client: Client, target: ReadTarget): string {
  return "room" in target ? target.room : conversationChannel(client.uid, target.with);
}

/** A target as a frame names it: `room`, or `with` without the name in `to`. */
function whereOf(target: ReadTarget): { room: string } | { with: string } {
  return "room" in target ? { room: target.room } : { with: target.with };
}

/** Stores, passes on and reads back read positions; lists conversations. */
export class ReadPositions {
  #o: ReadPositionsOptions;
  /** Failures repeat for every read while the store is down: one line per interval. */
  #failures: LogThrottle;
  #indexed = new Set<string>();
  /** The last store under way per read channel. */
  #writing = new Map<string, Promise<void>>();

  /** Read positions over the manager's engine and sockets. */
  constructor(options: ReadPositionsOptions) {
    this.#o = options;
    this.#failures = new LogThrottle({ logger: options.log, clock: options.clock });
  }

  /** Whether the client has an identity to keep positions for; tells it when not. */
  identified(client: Client): boolean {
    if (client.userId !== null) return true;
    const message = "Read positions need a token or a browser key";
    this.#o.outbox.sendError(client, { code: ErrorCode.NoIdentity, message });
    return false;
  }

  /**
   * Stores the client's position in a target when it moves it forward (or
   * is of another epoch), then tells the client's tabs and, in a
   * conversation, the other person.
   */
  read(client: Client, target: ReadTarget, position: Position): Promise<void> {
    const channel = readChannel(client.uid, channelOf(client, target));
    // One at a time per channel in this process: two tabs' reads do not store out of order.
    const before = this.#writing.get(channel) ?? Promise.resolve();
    const done = before.then(() => this.#store(client, { target, position, channel }));
    this.#writing.set(channel, done);
    return done.finally(() => {
      if (this.#writing.get(channel) === done) this.#writing.delete(channel);
    });
  }

  async #store(
    client: Client,
    read: { target: ReadTarget; position: Position; channel: string },
  ): Promise<void> {
    const { target, position, channel } = read;
    try {
      const [top, stored] = await Promise.all([
        this.#o.engine.history(channelOf(client, target), { limit: 0 }),
        this.#position(channel),
      ]);
      // Only a message that exists: a position is never stored for a conversation that is not,
      // so made-up uids cannot fill the store with channels.
      if (top.position.epoch !== position.epoch || position.id > top.position.offset) return;
      if (stored?.epoch === position.epoch && stored.id >= position.id) return;
      await this.#o.engine.publish(channel, JSON.stringify(position), { history: true });
    } catch (error) {
      this.#failures.warn("read_failed", { error: String(error) });
      return;
    }
    const own: ReadFrame = { type: "read", ...whereOf(target), ...position };
    this.#live(client.key, own);
    if ("with" in target && target.to !== undefined) {
      this.#seen(target.to, { with: target.with, from: client.uid, position });
    }
  }

  /**
   * Sends the client its stored position in a target (`read`) and, in a
   * conversation, the other person's (`seen`); nothing when none is stored.
   */
  async send(client: Client, target: ReadTarget): Promise<void> {
    if (client.userId === null) return;
    const channel = channelOf(client, target);
    const theirs = "with" in target ? readChannel(target.with, channel) : undefined;
    try {
      const [own, seen] = await Promise.all([
        this.#position(readChannel(client.uid, channel)),
        theirs === undefined ? undefined : this.#position(theirs),
      ]);
      if (client.closing) return;
      if (own !== undefined) {
        this.#o.outbox.send(client, { type: "read", ...whereOf(target), ...own });
      }
      if (seen !== undefined && "with" in target) {
        this.#o.outbox.send(client, { type: "seen", with: target.with, ...seen });
      }
    } catch (error) {
      this.#failures.warn("read_failed", { error: String(error) });
    }
  }

  /**
   * Lists a conversation in both participants' lists, unless this process
   * did lately. Only between identities: a connection's own uid dies with it.
   */
  index(from: { uid: string; name: string }, to: { uid: string; name: string }): void {
    const pair = conversationChannel(from.uid, to.uid);
    if (this.#indexed.has(pair)) return;
    if (this.#indexed.size >= INDEXED_PAIRS) this.#indexed.clear();
    this.#indexed.add(pair);
    const engine = this.#o.engine;
    const entry = (other: { uid: string; name: string }) =>
      JSON.stringify({ with: other.uid, name: other.name });
    Promise.all([
      engine.publish(conversationsChannel(from.uid), entry(to), { history: true }),
      engine.publish(conversationsChannel(to.uid), entry(from), { history: true }),
    ]).catch((error) => {
      this.#indexed.delete(pair);
      this.#failures.warn("index_failed", { error: String(error) });
    });
  }

  /** Answers `conversations`: the client's conversations, newest first, with their positions. */
  async list(client: Client): Promise<void> {
    const engine = this.#o.engine;
    try {
      const page = await engine.history(conversationsChannel(client.uid), { limit: INDEX_READ });
      const people = new Map<string, string>();
      for (const p of page.publications.toReversed()) {
        const { with: other, name } = JSON.parse(p.payload) as { with: string; name: string };
        if (!people.has(other)) people.set(other, name);
        if (people.size === CONVERSATIONS_LISTED) break;
      }
      const conversations = await Promise.all(
        [...people].map(([other, name]) => this.#summary(client, { with: other, name })),
      );
      if (!client.closing) this.#o.outbox.send(client, { type: "conversations", conversations });
    } catch (error) {
      this.#failures.warn("read_failed", { error: String(error) });
      const message = "Conversations not available; try again";
      if (!client.closing) {
        this.#o.outbox.sendError(client, { code: ErrorCode.Unavailable, message });
      }
    }
  }

  /** One conversation's newest id and both participants' positions in its epoch. */
  async #summary(
    client: Client,
    person: { with: string; name: string },
  ): Promise<ConversationSummary> {
    const channel = conversationChannel(client.uid, person.with);
    const [top, own, theirs] = await Promise.all([
      this.#o.engine.history(channel, { limit: 0 }),
      this.#position(readChannel(client.uid, channel)),
      this.#position(readChannel(person.with, channel)),
    ]);
    const { offset, epoch } = top.position;
    const inEpoch = (p: Position | undefined) => p?.epoch === epoch ? Math.min(p.id, offset) : 0;
    return { ...person, last_id: offset, epoch, read_id: inEpoch(own), seen_id: inEpoch(theirs) };
  }

  /** The newest position stored in a read channel. */
  async #position(channel: string): Promise<Position | undefined> {
    const page = await this.#o.engine.history(channel, { limit: 1 });
    const last = page.publications.at(-1);
    return last === undefined ? undefined : JSON.parse(last.payload) as Position;
  }

  /** Publishes a frame live to the tabs of a name. */
  #live(key: string, frame: object): void {
    this.#o.publisher.live(userChannel(key), frame);
  }

  /** Passes a read receipt live to the other person, when the name is theirs now. */
  #seen(name: string, receipt: { with: string; from: string; position: Position }): void {
    const frame = { type: "seen", with: receipt.from, ...receipt.position };
    const key = nameKey(name);
    const local = this.#o.registry.byName.get(key)?.[0];
    if (local !== undefined) {
      if (local.uid === receipt.with) this.#live(key, frame);
      return;
    }
    this.#o.presence?.lookup(name).then((holder) => {
      if (holder?.userId && publicUserId(holder.userId) === receipt.with) {
        this.#live(key, frame);
      }
    }, () => {});
  }
}
