/**
 * "Is typing": where a client's `typing` frame goes, live and never stored
 * (its room, or the user channel of the person it writes to), and whether
 * it goes at all: at most once per TYPING_INTERVAL_MS per room or person,
 * the rest dropped without a word, as a typist sends on every key.
 *
 * @module
 */

import type { Client } from "./client.ts";
import { userChannel } from "./engines/engine.ts";
import { nameKey, normalizeName, TYPING_INTERVAL_MS, type TypingFrame } from "./protocol.ts";

/** Typing targets remembered per connection; more start the memory afresh. */
const TYPING_TARGETS = 16;

/** Whether a `typing` frame to `target` may pass at `now`, remembering it when it does. */
function passes(client: Client, target: string, now: number): boolean {
  const seen = client.typingAt ??= new Map();
  if (now - (seen.get(target) ?? -Infinity) < TYPING_INTERVAL_MS) return false;
  if (seen.size >= TYPING_TARGETS) seen.clear();
  seen.set(target, now);
  return true;
}

/**
 * The channel and frame a client's typing goes out as, in `room` (the room
 * the client is in or, for `to`, its first room), or undefined when it is
 * dropped: too soon after the last one to the same place, or an invalid name.
 */
export function typingOut(
  client: Client,
  at: { room: string; to: string | undefined; now: number },
): { channel: string; frame: TypingFrame } | undefined {
  const { room, now } = at;
  if (at.to === undefined) {
    if (!passes(client, room, now)) return undefined;
    return { channel: room, frame: { type: "typing", room, user: client.username } };
  }
  const to = normalizeName(at.to);
  if (to === undefined || !passes(client, `@${nameKey(to)}`, now)) return undefined;
  const frame: TypingFrame = { type: "typing", room, user: client.username, to };
  return { channel: userChannel(nameKey(to)), frame };
}
