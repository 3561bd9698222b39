/**
 * Replay: a client entering a room gets the room's history in its `welcome`
 * (its first frame) or `joined`, and a resume gets what it missed. The
 * room's live frames wait in the client's backlog meanwhile, so nothing is
 * lost or sent twice between the history and the live stream.
 *
 * @module
 */

import type { BacklogItem, Client } from "./client.ts";
import type { Clock } from "./clock.ts";
import type { Engine, Presence } from "./engines/engine.ts";
import type { Logger } from "./logger.ts";
import type { Outbox } from "./outbox.ts";
import type { JoinedFrame, WelcomeFrame } from "./protocol.ts";
import { type Publisher, stampId } from "./publisher.ts";
import type { Registry } from "./registry.ts";

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
  /** Where events are logged. */
  log: Logger;
  /** See {@linkcode DEFAULT_REPLAY}. */
  historyOnJoin: number;
  /** Messages replayed at most on recovery. */
  historyLimit: number;
  /** The ping cadence of the heartbeat route, told in `welcome`. */
  heartbeatIntervalMs: number;
  /** The silence after which a heartbeat client is closed, told in `welcome`. */
  heartbeatTimeoutMs: number;
  /** The largest frame a client may send, told in `welcome`. */
  maxMessageBytes: number;
}

/**
 * A `since` whose epoch is not the engine's: offsets of a store that lost
 * its history recover nothing, so the recent tail goes out with
 * `recovered: false`.
 */
const STALE_SINCE = -1;

/** History read for one client's `welcome` or `joined`. */
interface Replaying {
  client: Client;
  room: string;
  /** The last id the client saw, if it said. */
  since: number | undefined;
  /** A `welcome` (the client's first frame) rather than a `joined`. */
  welcome: boolean;
  /** The stored frames' JSON, stamped. */
  texts: string[];
  /** The last frame's id; 0 when none. */
  lastId: number;
  /** Whether nothing between `since` and the history was lost. */
  complete: boolean;
}

/**
 * Serialises a `welcome` or `joined` frame whose `history` is empty with the
 * given frames' JSON in it. The key `"history":[]` can only be that key: quotes
 * inside strings are escaped.
 */
function spliceHistory(frame: WelcomeFrame | JoinedFrame, texts: readonly string[]): string {
  // A function, so `$` in the texts is not a replacement pattern.
  return JSON.stringify(frame).replace('"history":[]', () => `"history":[${texts.join(",")}]`);
}

/** Sends history to clients entering or resuming rooms. */
export class Replay {
  #o: ReplayOptions;
  #presence: Presence | undefined;

  /** Replay from the options' engine. */
  constructor(options: ReplayOptions) {
    this.#o = options;
    this.#presence = options.engine.presence;
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
      this.#o.publisher.notify(room, "join", `${client.username} joined the room`, client.username);
    }
    this.replay(client, room, since, welcome);
  }

  /**
   * Reads a room's history (the recent tail, or what followed `since`) and
   * sends it as `welcome` or `joined`; the room's live frames wait meanwhile.
   */
  replay(client: Client, room: string, since: number | undefined, welcome: boolean): void {
    this.#hold(client, room);
    // A stale `since` (another epoch) gets the recent tail, like a first visit.
    const query = since === undefined || since === STALE_SINCE
      ? { limit: this.#o.historyOnJoin }
      : { after: since, limit: this.#o.historyLimit };
    const everywhere = this.#presence?.users(room).catch(() => undefined);
    const base = { client, room, since, welcome };
    this.#o.engine.history(room, query).then(
      ({ publications: pubs, complete }) => {
        // Stamped once per stored payload; the welcome splices them in unparsed.
        const texts = pubs.map((p) => stampId(p.offset, p.payload));
        const lastId = pubs.at(-1)?.offset ?? 0;
        this.#sendWhenKnown(everywhere, { ...base, texts, lastId, complete });
      },
      (error) => {
        this.#o.log.warn("history_failed", { room, error: String(error) });
        this.#sendWhenKnown(everywhere, { ...base, texts: [], lastId: 0, complete: false });
      },
    );
  }

  /** Makes the room's live frames wait in the client's backlog. */
  #hold(client: Client, room: string): void {
    (client.replaying ??= new Set()).add(room);
    if (client.backlog === null) client.backlog = [];
  }

  /** Sends history once the users of every process are known (at once without presence). */
  #sendWhenKnown(everywhere: Promise<string[] | undefined> | undefined, r: Replaying): void {
    if (everywhere === undefined) return this.#send(r);
    everywhere.then((users) => this.#send(r, users));
  }

  #send(r: Replaying, everywhere?: readonly string[]): void {
    const { client, room, since } = r;
    if (client.closing || !client.rooms.includes(room)) return;
    const registry = this.#o.registry;
    const users = everywhere === undefined
      ? registry.users(room)
      : registry.usersWith(room, everywhere);
    const recovered = since === undefined ? true : since !== STALE_SINCE && r.complete;
    const epoch = this.#o.engine.epoch;
    const frame: WelcomeFrame | JoinedFrame = r.welcome
      ? this.#welcome(client, room, users, recovered)
      : { type: "joined", room, users, history: [], recovered, epoch };
    this.#o.outbox.sendText(client, spliceHistory(frame, r.texts));
    if (r.welcome) client.welcomed = true;
    this.#release(client, room, Math.max(since ?? 0, r.lastId));
  }

  #welcome(client: Client, room: string, users: string[], recovered: boolean): WelcomeFrame {
    const w = this.#o;
    return {
      type: "welcome",
      id: client.id,
      username: client.username,
      room,
      users,
      heartbeat: client.heartbeat
        ? { interval_ms: w.heartbeatIntervalMs, timeout_ms: w.heartbeatTimeoutMs }
        : null,
      server_time: new Date(this.#o.clock.now()).toISOString(),
      history: [],
      recovered,
      epoch: this.#o.engine.epoch,
      limits: { max_message_bytes: w.maxMessageBytes },
    };
  }

  /** Sends the backlog the room's history did not hold; frames of rooms still replaying wait. */
  #release(client: Client, room: string, cursor: number): void {
    const replaying = client.replaying;
    replaying?.delete(room);
    const rest: BacklogItem[] = [];
    for (const item of client.backlog ?? []) {
      if (item.channel === room) {
        if (item.id > cursor) this.#o.outbox.sendText(client, item.text);
      } else if (replaying?.has(item.channel)) {
        rest.push(item);
      } else {
        this.#o.outbox.sendText(client, item.text);
      }
    }
    if (replaying === null || replaying.size === 0) {
      client.replaying = null;
      client.backlog = null;
    } else {
      client.backlog = rest;
    }
  }
}
