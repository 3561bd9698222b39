// The page's shared state: its elements (`ui`), what it is showing and knows (`state`), and
// the rendered log of each room and conversation (`logs`), with what is derived from them
// alone. Every other part of the page reads and writes these.

import { DEFAULT_ROOM, nameKey } from "./chat_client.js";
import { $ } from "./dom.js";

export const ui = {
  app: $("app"),
  status: $("status"),
  statusText: $("status-text"),
  statusCountdown: $("status-countdown"),
  retryNow: $("retry-now"),
  joinForm: $("join-form"),
  username: $("username"),
  room: $("room"),
  connect: $("connect"),
  joinError: $("join-error"),
  session: $("session"),
  myName: $("my-name"),
  roomName: $("room-name"),
  renameButton: $("rename-button"),
  renameForm: $("rename-form"),
  renameInput: $("rename-input"),
  renameError: $("rename-error"),
  switchButton: $("switch-button"),
  switchForm: $("switch-form"),
  switchInput: $("switch-input"),
  switchError: $("switch-error"),
  disconnect: $("disconnect"),
  rooms: $("rooms"),
  roomList: $("room-list"),
  moreRooms: $("more-rooms"),
  otherRooms: $("other-rooms"),
  otherRoomsStatus: $("other-rooms-status"),
  roomsError: $("rooms-error"),
  send: $("send"),
  messages: $("messages"),
  newMessages: $("new-messages"),
  notifyButton: $("notify-button"),
  typing: $("typing"),
  announcer: $("announcer"),
  userCount: $("user-count"),
  userList: $("user-list"),
  composer: $("composer"),
  privateTarget: $("private-target"),
  privateName: $("private-name"),
  privateCancel: $("private-cancel"),
  message: $("message"),
  composerError: $("composer-error"),
  talks: $("talks"),
  talkList: $("talk-list"),
};

export const state = {
  /** @type {ChatClient | null} The client while the user wants to be connected. */
  chat: null,
  /** The name asked for, then the one the server gave. */
  username: "",
  /** The room shown, or behind the conversation shown. */
  room: DEFAULT_ROOM,
  /** The uid of the person whose conversation is shown instead of the room; "" for none. */
  talk: "",
  /** Set while a join from the form or the list waits for `joined`: then it is shown. */
  pendingRoom: "",
  /** Rooms of the tab's session to join again after a reload (beside the one shown). */
  restoreRooms: [],
  /** @type {Set<string>} The uids of the people written with privately, most recent last. */
  talks: new Set(),
  /** @type {string[]} After a reload: the conversations to read again once welcomed. */
  restoreTalks: [],
  /** Rooms this page asked to leave: their `left` needs no notice. */
  leaving: new Set(),
  /** @type {{ room: string, count: number }[]} Rooms from GET /api/rooms, as last told. */
  otherRooms: [],
  otherRoomsError: "",
  /** @type {ReturnType<typeof setInterval> | undefined} */
  otherRoomsTimer: undefined,
  /** Whether the current socket got its `welcome`. */
  live: false,
  /** The application heartbeat, as the welcome announced it. */
  heartbeat: false,
  reconnectAt: 0,
  lastReason: "",
  /** @type {ReturnType<typeof setInterval> | undefined} */
  countdownTimer: undefined,
  /** The server's limit, from `welcome.limits`; none before it, since nothing is sent before it. */
  maxMessageBytes: Infinity,
  /** @type {string[]} */
  users: [],
  /** The current room's user count: more than `users` lists in a big room. */
  userCount: 0,
  privateTo: "",
  /** Whether the log was at its bottom as last seen; it stays there when its box shrinks. */
  pinned: true,
};

export function sameName(a, b) {
  return nameKey(a) === nameKey(b);
}

// Room logs: each room the page is in keeps its rendered items. Those of the room shown
// are in #messages; a room not shown keeps them in a list of its own, off the page, and
// they move back into #messages when it is shown again.

/**
 * @typedef {object} RoomLog
 * @property {string} room
 * @property {HTMLOListElement} holder The room's items while it is not shown.
 * @property {{ day: string, group: { key: string, time: number } | null }} flow What was
 *   rendered last: the local day of the last dated item ("" before any), and the group a
 *   next message may join.
 * @property {number} unread Messages that came while the room was not shown.
 * @property {number} scrollTop
 * @property {boolean} pinned
 */

/** @type {Map<string, RoomLog>} */
export const logs = new Map();

export function logFor(room) {
  let log = logs.get(room);
  if (log === undefined) {
    log = {
      room,
      holder: document.createElement("ol"),
      flow: { day: "", group: null },
      unread: 0,
      scrollTop: 0,
      pinned: true,
    };
    logs.set(room, log);
  }
  return log;
}

/** The key of the log shown: the room, or `@<uid>` for the conversation shown. */
export function shownKey() {
  return state.talk === "" ? state.room : `@${state.talk}`;
}

/** The log of a private frame: its conversation's when both sides are identities. */
export function talkKeyOf(frame) {
  const uid = talkUidOf(frame);
  return uid === undefined ? undefined : `@${uid}`;
}

/** The other person of a private frame, when both sides are identities; else undefined. */
export function talkUidOf(frame) {
  const uid = isOwn(frame) ? frame.to_uid : frame.uid;
  // "u…" is an identity's uid (a token or a key); "c…" one connection's, gone with it.
  return typeof uid === "string" && uid.startsWith("u") && uid !== state.chat?.uid
    ? uid
    : undefined;
}

/**
 * Whether one wrote it: by identity (`uid`, the same across renames, reloads and this
 * browser's tabs), by name for a frame without one (a pending message, an older server).
 */
export function isOwn(frame) {
  const uid = state.chat?.uid ?? "";
  if (typeof frame.uid === "string" && uid !== "") return frame.uid === uid;
  return sameName(frame.username, state.username);
}
