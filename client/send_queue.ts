/**
 * What a client sends and has not yet seen answered: each chat or private
 * message waits here, with a client id (`cid`) the server echoes on the
 * stored frame or on the error that refused it, until its fate is known.
 * Messages sent while disconnected or rate limited wait their turn; the
 * queue is bounded, and a message the server may or may not have stored
 * before a connection dropped is held until the replay tells.
 *
 * @module
 */

import type {
  ClientChatMessage,
  ClientPrivateMessage,
  ErrorCode,
  MessageFrame,
  PrivateFrame,
} from "../chat/protocol.ts";

/** Why a message was not sent: a server error code, or one of the client's own. */
export type RefusalCode = ErrorCode | "message_too_big" | "queue_full" | "closed";

/** What became of a message given to `ChatClient.send`. */
export type Fate =
  | { status: "stored"; frame: MessageFrame | PrivateFrame }
  | { status: "refused"; code: RefusalCode; reason: string };

/**
 * A message's fate to come, and its client id (`cid`), known at once: the
 * stored frame, which may arrive before the fate, carries it; "" for a
 * message refused before it got one.
 */
export type Sending = Promise<Fate> & { readonly cid: string };

/** A chat or private message with its client id. */
export type OutgoingFrame = (ClientChatMessage | ClientPrivateMessage) & { cid: string };

/** One message in the queue. */
export interface Outgoing {
  /** The frame as it is sent. */
  frame: OutgoingFrame;
  /** Whether it went out on the current socket and waits for its answer. */
  sent: boolean;
  /**
   * Whether it went out on a socket that dropped before the answer: it is
   * sent again only once the room's replay has not shown it stored.
   */
  uncertain: boolean;
  /** How many times the server answered `rate_limited`. */
  retries: number;
  /** Settles the promise `send` returned. */
  settle: (fate: Fate) => void;
}

/** The messages not yet answered, oldest first. */
export class SendQueue {
  readonly #limit: number;
  #items: Outgoing[] = [];
  #counter = 0;
  readonly #prefix: string;

  /** A queue holding at most `limit` messages; `random` makes its ids unique across tabs. */
  constructor(limit: number, random: () => number) {
    this.#limit = limit;
    this.#prefix = Math.floor(random() * 36 ** 6).toString(36).padStart(6, "0");
  }

  /** The number of messages waiting for their fate. */
  get size(): number {
    return this.#items.length;
  }

  /** Queues a message; its fate settles the returned promise. */
  add(frame: ClientChatMessage | ClientPrivateMessage): Sending {
    if (this.#items.length >= this.#limit) {
      const reason = `Too many messages waiting to be sent: ${this.#items.length}`;
      return sending(Promise.resolve({ status: "refused", code: "queue_full", reason }), "");
    }
    const cid = `${this.#prefix}-${++this.#counter}`;
    const fate = new Promise<Fate>((settle) => {
      this.#items.push({
        frame: { ...frame, cid },
        sent: false,
        uncertain: false,
        retries: 0,
        settle,
      });
    });
    return sending(fate, cid);
  }

  /** The oldest message ready to go out: not sent, not held by an unfinished replay. */
  next(ready: (item: Outgoing) => boolean): Outgoing | undefined {
    return this.#items.find((item) => !item.sent && ready(item));
  }

  /** Settles the message with client id `cid`; false when none waits. */
  settle(cid: string, fate: Fate): boolean {
    const index = this.#items.findIndex((item) => item.frame.cid === cid);
    if (index < 0) return false;
    const [item] = this.#items.splice(index, 1);
    item?.settle(fate);
    return true;
  }

  /** Puts a message refused for its rate back in line; its retries so far, or -1 when none has `cid`. */
  retry(cid: string): number {
    const item = this.#items.find((candidate) => candidate.frame.cid === cid);
    if (item === undefined) return -1;
    item.sent = false;
    return ++item.retries;
  }

  /** After a dropped socket: what was sent is uncertain and goes out again once cleared. */
  dropped(): void {
    for (const item of this.#items) {
      if (item.sent) item.uncertain = true;
      item.sent = false;
    }
  }

  /** Marks the uncertain messages matching `which` as plain unsent ones. */
  clear(which: (item: Outgoing) => boolean): void {
    for (const item of this.#items) if (item.uncertain && which(item)) item.uncertain = false;
  }

  /** Settles every message as refused with `code` and empties the queue. */
  refuseAll(code: RefusalCode, reason: string): void {
    const items = this.#items;
    this.#items = [];
    for (const item of items) item.settle({ status: "refused", code, reason });
  }
}

/** A fate promise with its client id. */
export function sending(fate: Promise<Fate>, cid: string): Sending {
  return Object.assign(fate, { cid });
}
