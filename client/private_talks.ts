/**
 * A client's private messages: each shown once, whether it came live or in
 * a conversation read again, and the most recently active conversations
 * resumed after a reconnect from the last id seen, their frames `missed`.
 *
 * @module
 */

import type { ConversationFrame, PrivateFrame } from "../chat/protocol.ts";
import { Conversations } from "./conversations.ts";
import type { Emitter } from "./emitter.ts";
import type { ChatClientEvents } from "./events.ts";

/** Conversations read again after a reconnect: the most recently active. */
const RESUMED_CONVERSATIONS = 5;

/** What {@linkcode PrivateTalks} needs from its client. */
export interface PrivateTalksOptions {
  /** The client's events, which private frames are emitted as. */
  events: Emitter<ChatClientEvents>;
  /** Sends a frame now; false when not connected. */
  write: (frame: object) => boolean;
  /** This user's public uid, from the last welcome. */
  uid: () => string;
  /** Settles the own message a private frame shows stored (live ones even when seen already). */
  settle: (frame: PrivateFrame) => void;
}

/** The private conversations of one client, by the other person's uid. */
export class PrivateTalks {
  /** The private conversations seen, by the other person's uid. */
  readonly #talks = new Conversations();
  /** Conversations asked for again after a reconnect, whose frames are `missed`. */
  readonly #resuming = new Set<string>();
  readonly #events: Emitter<ChatClientEvents>;
  readonly #write: (frame: object) => boolean;
  readonly #uid: () => string;
  readonly #settle: (frame: PrivateFrame) => void;

  /** No conversations yet. */
  constructor(options: PrivateTalksOptions) {
    this.#events = options.events;
    this.#write = options.write;
    this.#uid = options.uid;
    this.#settle = options.settle;
  }

  /** The last id seen in the conversation with uid `other`; 0 when none. */
  last(other: string): number {
    return this.#talks.last(other);
  }

  /** Asks again, after a welcome, for what the most recent conversations missed. */
  resume(): void {
    // Conversations between identities are read again from where they were.
    for (const resume of this.#talks.resumes(RESUMED_CONVERSATIONS)) {
      this.#resuming.add(resume.with);
      this.#write({ type: "conversation", ...resume });
    }
  }

  /** Takes a live private message; one seen already is dropped. */
  receive(frame: PrivateFrame): void {
    this.#settle(frame);
    const other = Conversations.other(frame, this.#uid());
    if (other !== undefined && !this.#talks.record(other, frame)) return;
    this.#events.emit("private", { frame, replayed: false, missed: false });
  }

  /** A conversation read again: what was not shown yet, and the next page when there is one. */
  conversation(frame: ConversationFrame): void {
    const missed = this.#resuming.delete(frame.with);
    for (const stored of frame.history) {
      if (!this.#talks.record(frame.with, stored)) continue;
      this.#settle(stored);
      this.#events.emit("private", { frame: stored, replayed: true, missed });
    }
    if (frame.more && frame.history.length > 0) {
      if (missed) this.#resuming.add(frame.with);
      this.#write({ type: "conversation", with: frame.with, since: this.#talks.last(frame.with) });
    }
  }
}
