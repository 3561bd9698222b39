/**
 * Where a command goes: the client's first room, or a room it names and is
 * in. Shared by the command handlers of commands.ts and private_commands.ts.
 *
 * @module
 */

import type { Client } from "./client.ts";
import type { Commands } from "./commands.ts";
import { ErrorCode, roomName } from "./protocol.ts";

/** The client's first room: the default target of messages. */
export function defaultRoom(client: Client): string | undefined {
  return client.rooms[0];
}

/**
 * The room a frame names (folded by `roomName`; the first room when it names
 * none) when the client is in it, or undefined after telling it it is not.
 */
export function memberRoom(
  c: Commands,
  client: Client,
  raw: string | undefined,
): string | undefined {
  // The name as sent is usually the room's own spelling: no folding on the hot path.
  if (raw === undefined || client.rooms.includes(raw)) {
    const room = raw ?? defaultRoom(client);
    if (room !== undefined) return room;
  } else {
    const room = roomName(raw);
    if (room !== undefined && client.rooms.includes(room)) return room;
  }
  const shown = raw?.slice(0, 64) ?? "(none)";
  c.error(client, ErrorCode.NotInRoom, `Not in room: ${shown}`);
  return undefined;
}
