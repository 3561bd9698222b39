/**
 * What a close code means to a person, and whether reconnecting can help.
 *
 * @module
 */

import { CloseCode, CloseReason } from "../chat/protocol.ts";

/** The reason Deno's protocol-level ping timeout closes a socket with (code 1001). */
export const PING_TIMEOUT_REASON = "No response from ping frame.";

const LABELS: ReadonlyMap<number, string> = new Map<number, string>([
  // Deno's WebSocket reports a failed handshake or a lost connection with 0.
  [0, "Could not reach the server"],
  [CloseCode.Normal, "Connection closed"],
  [CloseCode.GoingAway, "Server shutting down"],
  [1006, "Connection lost"],
  [CloseCode.PolicyViolation, "Refused by the server"],
  [CloseCode.MessageTooBig, "Message too big"],
  [CloseCode.InternalError, "Server error"],
  [CloseCode.HeartbeatTimeout, "Heartbeat timeout"],
  [CloseCode.RoomClosed, "Room closed"],
  [CloseCode.Kicked, "Kicked"],
  [CloseCode.SlowConsumer, "Too slow to keep up; reconnecting"],
  [CloseCode.UsernameInUse, "Username already in use"],
]);

// The server refused this user or room: reconnecting cannot help.
const FINAL: ReadonlySet<number> = new Set<number>([
  CloseCode.PolicyViolation,
  CloseCode.RoomClosed,
  CloseCode.Kicked,
]);

// Policy closes that pass: a full server, an address's caps, a burst of handshakes.
const PASSING: ReadonlySet<string> = new Set<string>([
  CloseReason.ServerFull,
  CloseReason.TooManyConnections,
  CloseReason.RateLimitExceeded,
]);

/**
 * A short text for a close, for a status line: the server's reason when it
 * gave one, a label for the code otherwise. A 1001 from the protocol ping
 * timeout says the connection stopped answering, not that the server stops.
 */
export function describeClose(code: number, reason = ""): string {
  if (code === CloseCode.GoingAway && reason === PING_TIMEOUT_REASON) {
    return "Connection stopped answering";
  }
  if (reason !== "") return reason;
  return LABELS.get(code) ?? `Closed with code ${code}`;
}

/**
 * Whether a close ends the session: the server refused the user, the token
 * or the room (a full server or an address over its caps is worth another
 * try). `welcomed` says whether the session had started: a name in use
 * before any welcome is someone else's, after one it is most likely our own
 * previous socket that the server has not dropped yet.
 */
export function isFinalClose(close: { code: number; reason?: string }, welcomed: boolean): boolean {
  if (FINAL.has(close.code)) return !PASSING.has(close.reason ?? "");
  return close.code === CloseCode.UsernameInUse && !welcomed;
}
