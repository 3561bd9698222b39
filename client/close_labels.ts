/**
 * What a close code means to a person, and whether reconnecting can help.
 *
 * @module
 */

import { CloseCode } from "../chat/protocol.ts";

/** The reason Deno's protocol-level ping timeout closes a socket with (code 1001). */
export const PING_TIMEOUT_REASON = "No response from ping frame.";

const LABELS: ReadonlyMap<number, string> = new Map<number, string>([
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
 * or the room. `welcomed` says whether this socket's session had started: a
 * name in use before any welcome is someone else's, after one it is most
 * likely our own previous socket that the server has not dropped yet.
 */
export function isFinalClose(code: number, welcomed: boolean): boolean {
  return FINAL.has(code) || (code === CloseCode.UsernameInUse && !welcomed);
}
