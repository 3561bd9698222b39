/**
 * The frames of read positions, read receipts and the list of
 * conversations: part of the wire protocol (chat/protocol.ts re-exports
 * them and puts them in its unions). Only a connection with an identity (a
 * token or a browser key) has read positions; they are stored per identity,
 * so every tab and device of a person shares them.
 *
 * @module
 */

/**
 * Says the person has read a room or a conversation up to `id`: stored as
 * their read position there (only when it moves forward), passed to their
 * other tabs as a `read` frame and, in a conversation, to the other person
 * as `seen`. Give exactly one of `room` and `with`.
 */
export interface ClientRead {
  /** Always `read`. */
  type: "read";
  /** A room the connection is in. */
  room?: string;
  /** The other person of a conversation: their public uid. */
  with?: string;
  /** The id of the newest message read. */
  id: number;
  /** The epoch `id` belongs to (a room's from `welcome` or `joined`, a conversation's from `conversation`). */
  epoch: string;
  /** In a conversation, the other person's name: where the live read receipt goes. */
  to?: string;
}

/**
 * Asks for the person's conversations, newest first: answered with
 * `conversations`, or `rate_limited` within {@linkcode CONVERSATIONS_INTERVAL_MS}
 * of the last answer (each costs the store a few reads per conversation).
 */
export interface ClientConversations {
  /** Always `conversations`. */
  type: "conversations";
}

/**
 * The person's read position in a room or a conversation: sent after a
 * `joined` or `welcome` and a `conversation` when one is stored, and
 * whenever another tab of the person moves it.
 */
export interface ReadFrame {
  /** Always `read`. */
  type: "read";
  /** The room; absent for a conversation. */
  room?: string;
  /** The other person of the conversation (their uid); absent for a room. */
  with?: string;
  /** The id of the newest message read. */
  id: number;
  /** The epoch of `id`: a position of another epoch means nothing. */
  epoch: string;
}

/**
 * A read receipt: the other person of a conversation has read it up to
 * `id`. Sent after a `conversation` frame, and live when they read.
 */
export interface SeenFrame {
  /** Always `seen`. */
  type: "seen";
  /** The reader: the other person of the conversation (their uid). */
  with: string;
  /** The id of the newest message they read. */
  id: number;
  /** The epoch of `id`. */
  epoch: string;
}

/** One conversation in a `conversations` frame. */
export interface ConversationSummary {
  /** The other person's public uid. */
  with: string;
  /** The other person's name when the conversation was last indexed. */
  name: string;
  /** The id of the newest message; 0 when none is stored. */
  last_id: number;
  /** The epoch of the ids. */
  epoch: string;
  /** The person's own read position in this epoch; 0 when none. */
  read_id: number;
  /** The other person's read position in this epoch (the read receipt); 0 when none. */
  seen_id: number;
}

/** The answer to `conversations`: the person's conversations, newest first. */
export interface ConversationsFrame {
  /** Always `conversations`. */
  type: "conversations";
  /** At most {@linkcode CONVERSATIONS_LISTED} of them. */
  conversations: ConversationSummary[];
}

/** Conversations a `conversations` frame lists at most. */
export const CONVERSATIONS_LISTED = 20;

/** The least time between two `conversations` answers to one connection. */
export const CONVERSATIONS_INTERVAL_MS = 2000;
