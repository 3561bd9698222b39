/**
 * The commands between people: a private message, "is typing", read
 * positions and the list of conversations. Rows of commands.ts's table.
 *
 * @module
 */

import type { Handler } from "./commands.ts";
import { defaultRoom, memberRoom } from "./command_rooms.ts";
import {
  CONVERSATIONS_INTERVAL_MS,
  DEFAULT_ROOM,
  ErrorCode,
  nameKey,
  normalizeName,
} from "./protocol.ts";
import { typingOut } from "./typing.ts";
import { isIdentity, publicUserId } from "./user_ids.ts";

/** Sends a private message to a user online here or on another process. */
const privateMessage: Handler<"private"> = (c, client, msg, now) => {
  // The same rules as a name, so any spelling that connects as José reaches José.
  const to = normalizeName(msg.to);
  const first = to === undefined ? undefined : c.parts.registry.byName.get(nameKey(to))?.[0];
  // A room the sender names must be one it is in: the field is stored and shown to the target.
  const room = msg.room === undefined
    ? defaultRoom(client) ?? DEFAULT_ROOM
    : memberRoom(c, client, msg.room);
  if (room === undefined) return;
  const send = (name: string, key: string, toUid: string | undefined) => {
    if (isIdentity(client.uid) && toUid !== undefined && isIdentity(toUid)) {
      c.parts.reads.index({ uid: client.uid, name: client.username }, { uid: toUid, name });
    }
    c.parts.publisher.publishPrivate(client, key, {
      type: "private",
      room,
      username: client.username,
      sender: client.username,
      from: client.username,
      to: name,
      message: msg.message,
      timestamp: c.isoTime(now),
      ...(msg.cid === undefined ? {} : { cid: msg.cid }),
      uid: client.uid,
      ...(toUid === undefined ? {} : { to_uid: toUid }),
    });
  };
  if (first !== undefined) return send(first.username, first.key, first.uid);
  const fail = c.errorLater(client);
  const notFound = (shown: string) =>
    fail(ErrorCode.UserNotFound, `User not online: ${shown.slice(0, 64)}`);
  if (to === undefined || c.parts.presence === undefined) return notFound(msg.to);
  // Not here, but maybe on another process.
  c.parts.presence.lookup(to).then(
    (holder) => {
      if (client.closing) return;
      if (holder === undefined) return notFound(to);
      const toUid = holder.userId === null ? undefined : publicUserId(holder.userId);
      send(holder.username, nameKey(holder.username), toUid);
    },
    () => {
      if (!client.closing) fail(ErrorCode.Unavailable, "Message not stored; try again");
    },
  );
};

/** Passes "is typing" on, live only, to a room the client is in or to one person. */
const typing: Handler<"typing"> = (c, client, msg, now) => {
  const room = msg.to === undefined ? memberRoom(c, client, msg.room) : defaultRoom(client);
  if (room === undefined) return;
  const out = typingOut(client, { room, to: msg.to, now });
  if (out !== undefined) c.parts.publisher.live(out.channel, out.frame);
};

/** Stores a read position in a room the client is in or in a conversation of its identity. */
const read: Handler<"read"> = (c, client, msg) => {
  if (!c.parts.reads.identified(client)) return;
  const position = { id: msg.id, epoch: msg.epoch };
  if (msg.with !== undefined) {
    const to = msg.to === undefined ? {} : { to: msg.to };
    return void c.parts.reads.read(client, { with: msg.with, ...to }, position);
  }
  const room = memberRoom(c, client, msg.room);
  if (room !== undefined) void c.parts.reads.read(client, { room }, position);
};

/** Lists the client's conversations, at most once per CONVERSATIONS_INTERVAL_MS. */
const conversations: Handler<"conversations"> = (c, client, _msg, now) => {
  if (!c.parts.reads.identified(client)) return;
  if (now - client.listedAt < CONVERSATIONS_INTERVAL_MS) {
    return c.error(client, ErrorCode.RateLimited, "Conversations asked too often; wait a moment");
  }
  client.listedAt = now;
  void c.parts.reads.list(client);
};

/** The commands between people, as rows of the table of every command. */
export const PRIVATE_COMMANDS: {
  readonly [T in "private" | "typing" | "read" | "conversations"]: Handler<T>;
} = Object.freeze({ private: privateMessage, typing, read, conversations });
