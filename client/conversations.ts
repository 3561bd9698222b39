/**
 * What a client remembers of its private conversations: per other person
 * (their public uid), the highest id seen and the ids seen lately, so a
 * reconnect asks for what came after and shows nothing twice.
 *
 * @module
 */

import type { PrivateFrame } from "../chat/protocol.ts";

// Conversations remembered at most; the least recently active is forgotten first.
const MAX_CONVERSATIONS = 200;
// Ids remembered per conversation: enough to cover a replay's overlap with what was shown.
const SEEN_LIMIT = 500;

interface Conversation {
  last: number;
  ids: Set<number>;
}

/** The conversations of one client, by the other person's uid. */
export class Conversations {
  #byUid = new Map<string, Conversation>();

  /** The other person of a private frame, seen from `me`; undefined without uids. */
  static other(frame: PrivateFrame, me: string): string | undefined {
    return frame.uid === me ? frame.to_uid : frame.uid;
  }

  /** Records a frame of the conversation with `other`; false when it was seen already. */
  record(other: string, frame: PrivateFrame): boolean {
    let talk = this.#byUid.get(other);
    if (talk === undefined) {
      talk = { last: 0, ids: new Set() };
      if (this.#byUid.size >= MAX_CONVERSATIONS) {
        const oldest = this.#byUid.keys().next().value;
        if (oldest !== undefined) this.#byUid.delete(oldest);
      }
    }
    // Most recently active last.
    this.#byUid.delete(other);
    this.#byUid.set(other, talk);
    if (talk.ids.has(frame.id)) return false;
    talk.ids.add(frame.id);
    if (talk.ids.size > SEEN_LIMIT) {
      const oldest = talk.ids.values().next().value;
      if (oldest !== undefined) talk.ids.delete(oldest);
    }
    if (frame.id > talk.last) talk.last = frame.id;
    return true;
  }

  /**
   * The conversations to resume after a reconnect, the most recently active
   * `count`: each other person and the last id seen. (Each is a frame the
   * rate limit counts; the others are read when opened.)
   */
  resumes(count: number): { with: string; since: number }[] {
    const recent = count > 0 ? [...this.#byUid].slice(-count) : [];
    return recent.map(([uid, talk]) => ({ with: uid, since: talk.last }));
  }

  /** The last id seen with `other`; 0 when none. */
  last(other: string): number {
    return this.#byUid.get(other)?.last ?? 0;
  }
}
