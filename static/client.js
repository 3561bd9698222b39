// The chat page: the UI over ChatClient (chat_client.js, built from client/ by
// `deno task build`), which speaks the protocol: reconnects, resumes without
// duplicates, heartbeats, and sends with a fate for each message.
//
// Every piece of user-supplied text reaches the DOM through textContent only,
// so a message like `<img src=x onerror=alert(1)>` is shown, never parsed.

import {
  ChatClient,
  DEFAULT_ROOM,
  describeClose,
  mentions,
  nameKey,
  normalizeName,
  roomName,
  SYSTEM_SENDER,
} from "./chat_client.js";
import { dayLabel } from "./days.js";
import { linkify } from "./links.js";
import { notificationsAsked, notify } from "./notify.js";
import { TalkList } from "./talks.js";
import { TypingLine } from "./typing.js";
import { browserKey, loadName, loadSession, saveName, saveSession } from "./storage.js";

// The separators' labels, exported for the tests (they import the page module).
export { dayLabel };

// The server grants at most ten times its interval; asking for more gets that.
const HIDDEN_HEARTBEAT_MS = 10 * 60_000;
// Private conversations a tab keeps reading again after a reload.
const TALKS_KEPT = 5;
// Within this many pixels of the bottom the log counts as "at the bottom".
const STICKY_PX = 48;
// Items kept per room not shown (the room shown keeps all of its own).
const KEPT_ITEMS = 500;
// The list of other rooms, while open, is asked for again this often.
const ROOMS_REFRESH_MS = 30_000;
const BASE_TITLE = document.title;

const $ = (id) => {
  const element = document.getElementById(id);
  if (element === null) throw new Error(`Missing element: ${id}`);
  return element;
};

const ui = {
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

const state = {
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

// ---------------------------------------------------------------------------
// Small helpers

function sameName(a, b) {
  return nameKey(a) === nameKey(b);
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** User-supplied text: its direction comes from its own first strong letter (Arabic, Hebrew…). */
function userText(tag, className, text) {
  const node = el(tag, className, text);
  node.dir = "auto";
  return node;
}

// The people written with privately (at most TALKS_KEPT, the most recent), kept in the
// tab's session so a reload reads their conversations again.
function rememberTalk(frame) {
  const chat = state.chat;
  if (chat === null) return;
  const other = frame.uid === chat.uid ? frame.to_uid : frame.uid;
  if (typeof other !== "string" || other === chat.uid) return;
  state.talks.delete(other);
  state.talks.add(other);
  if (state.talks.size > TALKS_KEPT) state.talks.delete(state.talks.values().next().value);
  persistSession();
}

/** The session of a connected tab: its name, the room shown and every room it is in. */
function persistSession() {
  if (state.chat === null) return;
  const rooms = state.chat.rooms;
  saveSession({
    username: state.username,
    room: state.room,
    rooms: rooms.includes(state.room) ? rooms : [state.room, ...rooms],
    talks: [...state.talks],
  });
}

function setRoomInUrl(room) {
  const url = new URL(location.href);
  if (url.searchParams.get("room") === room) return;
  url.searchParams.set("room", room);
  history.replaceState(null, "", url);
}

function formatTime(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return { text: "", full: "" };
  return {
    text: date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }),
    full: date.toLocaleString(),
  };
}

// ---------------------------------------------------------------------------
// Status line

/**
 * The status text is a live region: it is written only when the state or its reason
 * changes, so screen readers announce each change once. The reconnect countdown ticks
 * in its own element, outside the live region.
 */
function setStatus(kind, text) {
  ui.status.dataset.state = kind;
  ui.app.dataset.state = kind;
  if (ui.statusText.textContent !== text) ui.statusText.textContent = text;
  ui.retryNow.hidden = kind !== "reconnecting";
  if (kind !== "reconnecting") {
    ui.statusCountdown.hidden = true;
    ui.statusCountdown.textContent = "";
  }
}

function connectedStatus() {
  const heartbeat = state.heartbeat ? " · heartbeat on" : "";
  setStatus("connected", `Connected as ${state.username}${heartbeat}`);
}

function reconnectingStatus() {
  const reason = state.lastReason === "" ? "" : ` (${state.lastReason})`;
  setStatus("reconnecting", `Reconnecting…${reason}`);
  tickCountdown();
}

function tickCountdown() {
  const seconds = Math.max(1, Math.ceil((state.reconnectAt - Date.now()) / 1000));
  ui.statusCountdown.textContent = `retry in ${seconds} s`;
  ui.statusCountdown.hidden = false;
}

function showPanels() {
  const wanted = state.chat !== null;
  ui.joinForm.hidden = wanted;
  ui.session.hidden = !wanted;
  ui.rooms.hidden = !wanted;
  if (!wanted) ui.moreRooms.open = false;
  ui.myName.textContent = state.username === "" ? "(anonymous)" : state.username;
  ui.roomName.textContent = state.talk === "" ? `#${state.room}` : `${state.privateTo} (private)`;
  ui.message.disabled = !wanted;
  ui.send.disabled = !wanted;
  ui.renameButton.disabled = !state.live;
  ui.switchButton.disabled = !state.live;
  if (!state.live) {
    hideInlineForm(ui.renameForm, ui.renameButton);
    hideInlineForm(ui.switchForm, ui.switchButton);
  }
  renderRooms();
}

// ---------------------------------------------------------------------------
// Messages

function isAtBottom() {
  const log = ui.messages;
  return log.scrollHeight - log.scrollTop - log.clientHeight <= STICKY_PX;
}

function scrollToBottom() {
  ui.messages.scrollTop = ui.messages.scrollHeight;
  ui.newMessages.hidden = true;
  state.pinned = true;
}

/** Appends one rendered item to a room's log; the one shown stays at the bottom unless the
 * user scrolled up. */
function append(log, item, { own = false, live = true } = {}) {
  if (log.room !== shownKey()) {
    log.holder.append(item);
    trim(log.holder);
    return;
  }
  // Pinned, not measured: a box that shrank in this turn (a strip grew) is not scrolled up.
  const stick = own || state.pinned || isAtBottom();
  ui.messages.append(item);
  if (stick) scrollToBottom();
  else {
    state.pinned = false;
    if (live) ui.newMessages.hidden = false;
  }
}

function announce(text) {
  ui.announcer.textContent = text;
}

/** The header of a message: `sender` is the sender's name, or a node naming sender and target. */
function meta(sender, timestamp, tag) {
  const line = el("div", "meta");
  line.append(typeof sender === "string" ? userText("span", "sender", sender) : sender);
  if (tag !== undefined) line.append(el("span", "tag", tag));
  line.append(timeElement(timestamp));
  return line;
}

function timeElement(timestamp) {
  const time = formatTime(timestamp);
  const stamp = el("time", "time", time.text);
  stamp.dateTime = timestamp;
  stamp.title = time.full;
  return stamp;
}

// ---------------------------------------------------------------------------
// Days and groups: a separator before the first item of each day, and one person's
// messages in a row (within GROUP_MS of the one before) under one header.

const GROUP_MS = 5 * 60 * 1000;

// ---------------------------------------------------------------------------
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
const logs = new Map();

function logFor(room) {
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

/** The list a room's items go to: #messages for the room shown. */
function listOf(log) {
  return log.room === shownKey() ? ui.messages : log.holder;
}

function trim(list) {
  while (list.childElementCount > KEPT_ITEMS) list.firstElementChild?.remove();
}

function dayKey(date) {
  return `${date.getFullYear()}-${date.getMonth()}-${date.getDate()}`;
}

/** Adds a day separator when `timestamp` falls on another day than the last dated item. */
function placeDay(log, timestamp) {
  const flow = log.flow;
  const date = new Date(timestamp);
  if (Number.isNaN(date.getTime())) return;
  const key = dayKey(date);
  if (key === flow.day) return;
  flow.day = key;
  flow.group = null;
  const item = el("li", "day");
  item.dataset.testid = "day";
  item.setAttribute("role", "separator");
  const label = el("span", "day-label", dayLabel(date));
  item.setAttribute("aria-label", label.textContent);
  item.append(label);
  listOf(log).append(item);
}

/** Whether a message of `key` at `timestamp` continues the group above it; it becomes the last. */
function continuesGroup(log, key, timestamp) {
  const flow = log.flow;
  placeDay(log, timestamp);
  const time = new Date(timestamp).getTime();
  const last = flow.group;
  flow.group = { key, time };
  // Own messages carry the page's clock until stored: a little skew must not split them.
  return last !== null && last.key === key && Math.abs(time - last.time) <= GROUP_MS;
}

function messageText(text) {
  const node = userText("p", "text");
  node.append(...linkify(text));
  return node;
}

// ---------------------------------------------------------------------------
// Chat and private messages

/**
 * Renders a chat or private message and returns its item. `pending`: one's own, just sent,
 * shown at once and waiting for its fate.
 */
/**
 * Whether one wrote it: by identity (`uid`, the same across renames, reloads and this
 * browser's tabs), by name for a frame without one (a pending message, an older server).
 */
function isOwn(frame) {
  const uid = state.chat?.uid ?? "";
  if (typeof frame.uid === "string" && uid !== "") return frame.uid === uid;
  return sameName(frame.username, state.username);
}

/**
 * Renders a frame where it belongs: a room's message in its room; a private message in the
 * room shown (as the seed shows them), or in its conversation while that is shown, and, one
 * between identities, in its conversation's log too, so the conversation is whole there.
 */
function renderMessage(frame, { live = true, pending = false } = {}) {
  if (frame.type !== "private") return renderInto(logFor(frame.room), frame, { live, pending });
  const talk = talkKeyOf(frame);
  const key = talk !== undefined && talk === shownKey() ? talk : state.room;
  const item = renderInto(logFor(key), frame, { live, pending });
  // One's own pending message is copied once stored (see `stored`).
  if (talk !== undefined && talk !== key && !pending) {
    renderInto(logFor(talk), frame, { live: false, pending: false });
  }
  return item;
}

/** Renders a message frame into one log. */
function renderInto(log, frame, { live, pending }) {
  const isPrivate = frame.type === "private";
  const own = isOwn(frame);
  const other = own ? frame.to : frame.sender;
  const key = `${isPrivate ? `private:${nameKey(other ?? "")}` : "room"}:${
    nameKey(frame.username)
  }`;
  const shown = log.room === shownKey();
  const continued = continuesGroup(log, key, frame.timestamp);
  const item = el("li", `message ${isPrivate ? "private " : ""}${own ? "own" : "other"}`);
  if (continued) item.classList.add("continued");
  item.dataset.testid = "message";
  if (isPrivate) {
    item.dataset.private = "true";
    const with_ = own ? frame.to_uid : frame.uid;
    if (typeof with_ === "string") item.dataset.with = with_;
  } else item.dataset.room = frame.room;
  if (frame.id !== undefined) item.dataset.id = String(frame.id);
  if (own) item.dataset.state = pending ? "pending" : "stored";
  const bubble = el("div", "bubble");
  const head = meta(
    isPrivate ? privateLine(own, other) : frame.sender,
    frame.timestamp,
    isPrivate ? "Private" : undefined,
  );
  // The header is shown once per group; the others keep it for screen readers, and their time.
  if (continued) {
    head.classList.add("continued-meta");
    for (const part of head.querySelectorAll(".sender, .tag")) {
      part.classList.add("visually-hidden");
    }
  }
  if (pending) head.append(el("span", "send-state", "Sending…"));
  bubble.append(head, messageText(frame.message));
  item.append(bubble);
  append(log, item, { own: own && live, live });
  if (live && !own && shown) {
    announce(
      isPrivate
        ? `Private message from ${frame.sender}: ${frame.message}`
        : `${frame.sender}: ${frame.message}`,
    );
  }
  return item;
}

/** The sender line of a private message, naming each side once: "alice → you", "you → bob". */
function privateLine(own, other) {
  const line = el("span", "sender");
  const you = el("span", "", "you");
  const them = userText("span", "", other);
  const arrow = el("span", "arrow", " → ");
  arrow.setAttribute("aria-hidden", "true");
  line.append(own ? you : them, arrow, el("span", "visually-hidden", " to "), own ? them : you);
  return line;
}

// ---------------------------------------------------------------------------
// One's own messages: shown at once as pending, then stored (the echo is not shown
// again) or failed with the reason and a Retry button.

/** @type {{ text: string, options: { room: string, to?: string }, cid: string, item: HTMLElement }[]} */
let outbox = [];
/** Client ids of one's own messages already on screen: their echoes are not shown again. */
const shownCids = new Set();

function rememberCid(cid) {
  shownCids.add(cid);
  if (shownCids.size > 1000) shownCids.delete(shownCids.values().next().value);
}

function sendMessage(text, options) {
  const frame = {
    type: options.to === undefined ? "message" : "private",
    username: state.username,
    sender: state.username === "" ? "you" : state.username,
    to: options.to,
    // Written in the conversation shown: it goes to that conversation's log.
    to_uid: options.to !== undefined && state.talk !== "" ? state.talk : undefined,
    room: options.room,
    message: text,
    timestamp: new Date().toISOString(),
  };
  const sending = state.chat.send(text, options);
  // The client id is known at once: the echo, which may come before the fate, carries it.
  const entry = { text, options, cid: sending.cid, item: renderMessage(frame, { pending: true }) };
  outbox.push(entry);
  sending.then((fate) => settle(entry, fate));
}

/**
 * Takes an echo of one's own message: true when it is already on screen (pending or
 * stored), so it is not shown twice. The echo comes before the fate that it settles.
 */
function takeEcho(frame) {
  const cid = frame.cid;
  if (typeof cid !== "string" || cid === "") return false;
  if (shownCids.has(cid)) return true;
  const entry = outbox.find((e) => e.cid === cid);
  if (entry === undefined) return false;
  stored(entry, frame);
  return true;
}

function settle(entry, fate) {
  outbox = outbox.filter((e) => e !== entry);
  if (fate.status === "stored") {
    if (entry.item.dataset.state === "pending") stored(entry, fate.frame);
  } else {
    failed(entry, fate.reason);
  }
}

function stored(entry, frame) {
  entry.cid = frame.cid ?? "";
  if (entry.cid !== "") rememberCid(entry.cid);
  const item = entry.item;
  item.dataset.state = "stored";
  if (frame.id !== undefined) item.dataset.id = String(frame.id);
  if (typeof frame.to_uid === "string") item.dataset.with = frame.to_uid;
  item.querySelector(".send-state")?.remove();
  const talk = frame.type === "private" ? talkKeyOf(frame) : undefined;
  if (talk !== undefined && !listOf(logFor(talk)).contains(item)) {
    renderInto(logFor(talk), frame, { live: false, pending: false });
  }
  const time = item.querySelector("time");
  if (time !== null && typeof frame.timestamp === "string") {
    time.replaceWith(timeElement(frame.timestamp));
  }
}

function failed(entry, reason) {
  const item = entry.item;
  item.dataset.state = "failed";
  item.querySelector(".send-state")?.remove();
  const retry = el("button", "retry", "Retry");
  retry.type = "button";
  retry.addEventListener("click", () => {
    if (state.chat === null) return;
    item.remove();
    sendMessage(entry.text, entry.options);
    ui.message.focus();
  });
  const line = el("div", "failure");
  line.append(userText("span", "reason", `Not sent: ${reason}`), retry);
  item.querySelector(".bubble")?.append(line);
  announce(`Not sent (${reason}): ${entry.text}`);
}

function renderSystem(frame, live) {
  const log = logFor(frame.room);
  placeDay(log, frame.timestamp);
  log.flow.group = null;
  const item = el("li", "message system");
  item.dataset.testid = "system";
  // Join and leave notices are live only, without an id.
  if (frame.id !== undefined) item.dataset.id = String(frame.id);
  item.dataset.room = frame.room;
  item.dataset.event = frame.event;
  const bubble = el("div", "bubble");
  bubble.append(userText("span", "text", frame.message), timeElement(frame.timestamp));
  item.append(bubble);
  append(log, item, { live });
  if (live && log.room === shownKey()) announce(frame.message);
}

/** A notice made by the page itself (errors, reconnects); it has no server id. */
function renderNotice(text, kind = "notice", room = shownKey()) {
  const log = logFor(room);
  log.flow.group = null;
  const item = el("li", `message system local ${kind}`);
  item.dataset.testid = kind;
  const bubble = el("div", "bubble");
  bubble.append(userText("span", "text", text));
  item.append(bubble);
  append(log, item);
  if (log.room === shownKey()) announce(text);
}

function clearMessages() {
  ui.messages.replaceChildren();
  logs.clear();
  ui.newMessages.hidden = true;
  state.pinned = true;
  outbox = [];
}

// ---------------------------------------------------------------------------
// Online users

/** Shows the online users; `count` is the room's total, more than the list in a big room. */
function setUsers(users, count = users.length) {
  state.users = [...new Set(users)];
  state.userCount = Math.max(count, state.users.length);
  renderUsers();
}

/** Follows the private target through a leave or a rename. */
function followTarget(frame) {
  if (state.privateTo === "" || frame.user === undefined) return;
  if (frame.event === "leave" && sameName(state.privateTo, frame.user)) {
    setPrivateTarget("");
    renderNotice(`${frame.user} left; private message cancelled.`);
  } else if (frame.event === "rename" && sameName(state.privateTo, frame.old_name ?? "")) {
    setPrivateTarget(frame.user);
  }
}

function renderUsers() {
  const items = state.users.map((name) => {
    const item = el("li", "user");
    if (sameName(name, state.username)) {
      item.classList.add("me");
      item.append(userText("span", "user-name", name), el("span", "you", "you"));
    } else {
      const button = userText("button", "user-name", name);
      button.type = "button";
      button.dataset.user = name;
      button.setAttribute("aria-label", `Send a private message to ${name}`);
      if (state.privateTo !== "" && sameName(state.privateTo, name)) {
        button.setAttribute("aria-pressed", "true");
      }
      item.append(button);
    }
    return item;
  });
  ui.userList.replaceChildren(...items);
  ui.userCount.textContent = String(state.userCount);
}

function setPrivateTarget(name) {
  // The conversation shown is the private target: without one, back to the room.
  if (name === "" && state.talk !== "") return showRoom(state.room);
  state.privateTo = name;
  ui.privateTarget.hidden = name === "";
  ui.privateName.textContent = name;
  ui.composer.classList.toggle("is-private", name !== "");
  ui.message.placeholder = name === "" ? "Type a message…" : `Private message to ${name}…`;
  renderUsers();
}

// ---------------------------------------------------------------------------
// Read positions: stored by the server for this browser's key (or token), so every tab
// and a reload know what was read. The room shown is read while the tab is visible and
// its log at the bottom; a conversation, when its person is the private target.

const talks = new TalkList({ list: ui.talkList, section: ui.talks, onPick: pickTalk });

/** Whether the person is looking at the newest messages of the room shown. */
function looking() {
  return document.visibilityState === "visible" && state.pinned;
}

/** Marks what is shown read: the room, or the conversation. */
function markShownRead() {
  const chat = state.chat;
  if (chat === null || !looking()) return;
  if (state.talk === "") return void chat.markRead({ room: state.room });
  chat.markRead({ with: state.talk, to: state.privateTo });
  talks.read(state.talk, talks.last(state.talk));
}

/** A private frame's conversation in the list; its uid, or undefined without identities. */
function noteTalk(frame) {
  const own = isOwn(frame);
  const uid = own ? frame.to_uid : frame.uid;
  if (typeof uid !== "string" || !uid.startsWith("u") || uid === state.chat?.uid) return undefined;
  const name = own ? frame.to : frame.sender;
  talks.message(uid, name, { id: frame.id, own });
  // One's own messages are read; theirs when their conversation is in view.
  if (own || (looking() && state.talk === uid)) {
    state.chat?.markRead({ with: uid, to: name });
    talks.read(uid, frame.id);
  }
  return uid;
}

/** A person chosen in the list: their conversation shown (the rest read again), and read. */
function pickTalk(uid, name) {
  showTalk(uid, name);
  state.chat?.conversation(uid);
  ui.message.focus();
}

/** This identity's position moved (another tab, or given back on join). */
function onRead(frame) {
  if (frame.with !== undefined) return talks.read(frame.with, frame.id);
  const room = frame.room;
  placeDivider(room, frame.id);
  if (room === shownKey() && looking()) return markShownRead();
  const unread = state.chat?.unread({ room });
  if (unread !== undefined) logFor(room).unread = unread;
  renderRooms();
}

/** "New messages" above the first message of others after `id`; none when all are read. */
function placeDivider(room, id) {
  const root = room === shownKey() ? ui.messages : logFor(room).holder;
  root.querySelector(".new-divider")?.remove();
  const first = [...root.querySelectorAll('[data-testid="message"].other')]
    .find((item) => Number(item.dataset.id) > id);
  if (first === undefined) return;
  const divider = el("li", "new-divider", "New messages");
  divider.setAttribute("role", "separator");
  divider.dataset.testid = "new-divider";
  first.before(divider);
}

/** "Seen" under one's last private message to `uid` that they have read. */
function showSeen(uid, id) {
  for (const mark of document.querySelectorAll(`.seen[data-with="${CSS.escape(uid)}"]`)) {
    mark.remove();
  }
  const read = [...document.querySelectorAll(
    `[data-testid="message"].own[data-with="${CSS.escape(uid)}"]`,
  )].filter((item) => Number(item.dataset.id) <= id);
  const last = read.at(-1);
  if (last === undefined) return;
  const mark = el("span", "seen", "Seen");
  mark.dataset.with = uid;
  mark.dataset.testid = "seen";
  last.append(mark);
}

// ---------------------------------------------------------------------------
// Rooms: the page stays in every room it joined and shows one; the others count what
// came while they were not shown. Room names go to the DOM as text only.

/** The rooms the page is in, the one shown among them even before the welcome. */
function myRooms() {
  const rooms = state.chat?.rooms ?? [];
  return rooms.includes(state.room) ? rooms : [state.room, ...rooms];
}

function totalUnread() {
  let total = talks.total();
  for (const log of logs.values()) total += log.unread;
  return total;
}

/** A hidden tab's title carries the unread total: "(3) Deno Chat". */
function updateTitle() {
  const total = totalUnread();
  const title = document.visibilityState === "hidden" && total > 0
    ? `(${total}) ${BASE_TITLE}`
    : BASE_TITLE;
  if (document.title !== title) document.title = title;
}

/** A message (not a notice) came to `room`: counted unless it is in view. */
function countUnread(room) {
  if (room === shownKey() && document.visibilityState !== "hidden") return;
  logFor(room).unread++;
  renderRooms();
}

function renderRooms() {
  const rooms = myRooms();
  // The list is built again: the focused control is found again by its room.
  const active = document.activeElement;
  const focused = active instanceof HTMLElement && ui.roomList.contains(active)
    ? { room: active.closest("[data-room]")?.dataset.room, leave: active.matches(".room-leave") }
    : null;
  const items = rooms.map((room) => {
    const count = room === shownKey() ? 0 : logs.get(room)?.unread ?? 0;
    const item = el("li", "room");
    item.dataset.room = room;
    const button = el("button", "room-button");
    button.type = "button";
    button.append(userText("span", "room-label", `#${room}`));
    if (room === shownKey()) button.setAttribute("aria-current", "true");
    if (count > 0) {
      const badge = el("span", "unread", String(count));
      badge.setAttribute("aria-hidden", "true");
      button.append(badge, el("span", "visually-hidden", `, ${count} unread`));
    }
    item.append(button);
    // Never one's last room: a page is always in one.
    if (rooms.length > 1) {
      const leave = el("button", "room-leave", "×");
      leave.type = "button";
      leave.title = `Leave #${room}`;
      leave.setAttribute("aria-label", `Leave #${room}`);
      leave.disabled = !state.live;
      item.append(leave);
    }
    return item;
  });
  ui.roomList.replaceChildren(...items);
  if (focused !== null) {
    const again = [...ui.roomList.children].find((item) => item.dataset.room === focused.room);
    const control = again?.querySelector(focused.leave ? ".room-leave" : ".room-button") ??
      again?.querySelector(".room-button") ??
      ui.roomList.querySelector('[aria-current="true"]');
    if (control instanceof HTMLElement) control.focus();
  }
  renderOtherRooms();
  updateTitle();
}

/** The key of the log shown: the room, or `@<uid>` for the conversation shown. */
function shownKey() {
  return state.talk === "" ? state.room : `@${state.talk}`;
}

/** The log of a private frame: its conversation's when both sides are identities. */
function talkKeyOf(frame) {
  const uid = isOwn(frame) ? frame.to_uid : frame.uid;
  return typeof uid === "string" && uid.startsWith("u") && uid !== state.chat?.uid
    ? `@${uid}`
    : undefined;
}

/** Puts the log of `key` in #messages; the one shown keeps its items and scroll place. */
function swapLog(key) {
  const old = logFor(shownKey());
  old.scrollTop = ui.messages.scrollTop;
  old.pinned = state.pinned;
  old.holder.replaceChildren(...ui.messages.childNodes);
  trim(old.holder);
  const log = logFor(key);
  ui.messages.replaceChildren(...log.holder.childNodes);
  ui.newMessages.hidden = true;
  if (log.pinned) scrollToBottom();
  else {
    ui.messages.scrollTop = log.scrollTop;
    state.pinned = isAtBottom();
  }
  typing.clear();
}

/** Shows one of the page's rooms: its own items, online list and address; nothing is left. */
function showRoom(room) {
  if (room !== state.room || state.talk !== "") {
    swapLog(room);
    state.room = room;
    state.talk = "";
    talks.setCurrent("");
    setPrivateTarget("");
    setUsers(state.chat?.users(room) ?? [], state.chat?.userCount(room));
    announce(`Showing #${room}`);
  }
  logFor(room).unread = 0;
  markShownRead();
  setRoomInUrl(room);
  persistSession();
  showPanels();
}

/** Shows the conversation with the person of `uid` instead of the room; writes to them. */
function showTalk(uid, name) {
  if (state.talk !== uid) {
    swapLog(`@${uid}`);
    state.talk = uid;
    talks.setCurrent(uid);
    const seen = state.chat?.seenBy(uid);
    if (seen !== undefined) showSeen(uid, seen.id);
    announce(`Showing your conversation with ${name}`);
  }
  setPrivateTarget(name);
  markShownRead();
  showPanels();
}

/** Joins `room` and shows it once joined; a room the page is in is only shown. */
function joinRoom(room, onError) {
  const chat = state.chat;
  if (chat === null) return;
  if (chat.rooms.includes(room)) {
    showRoom(room);
    return;
  }
  state.pendingRoom = room;
  chat.join(room).catch((error) => {
    if (state.pendingRoom === room) state.pendingRoom = "";
    onError(error.message);
  });
}

/** Leaves a room, never the last one; the room shown gives way to another first. */
function leaveRoom(room) {
  const chat = state.chat;
  if (chat === null || !state.live) return;
  const others = chat.rooms.filter((r) => r !== room);
  if (others.length === 0) return;
  if (room === state.room) showRoom(others[0]);
  state.leaving.add(room);
  chat.leave(room);
}

function onLeft(room) {
  const ours = state.leaving.delete(room);
  const next = state.chat?.rooms[0];
  if (room === state.room) {
    if (next === undefined) {
      renderNotice(`You are no longer in #${room}.`, "warning");
      return;
    }
    showRoom(next);
  }
  logs.delete(room);
  if (!ours) renderNotice(`You are no longer in #${room}.`, "warning");
  persistSession();
  renderRooms();
  if (document.activeElement === document.body || document.activeElement === null) {
    ui.roomList.querySelector('[aria-current="true"]')?.focus();
  }
}

/** The rooms of GET /api/rooms (with the tab's JWT when the server asks for one). */
async function refreshOtherRooms() {
  const token = authToken();
  try {
    const response = await fetch("/api/rooms", {
      headers: token === "" ? {} : { authorization: `Bearer ${token}` },
      cache: "no-store",
    });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const body = await response.json();
    const rooms = Array.isArray(body?.rooms) ? body.rooms : [];
    state.otherRooms = rooms
      .filter((entry) => typeof entry?.room === "string")
      .map((entry) => ({
        room: entry.room,
        count: Array.isArray(entry.users) ? entry.users.length : 0,
      }));
    state.otherRoomsError = "";
  } catch (error) {
    state.otherRoomsError = `Could not load the rooms (${error.message}).`;
  }
  renderOtherRooms();
}

function renderOtherRooms() {
  const mine = new Set(myRooms());
  const others = state.otherRooms.filter((entry) => !mine.has(entry.room));
  ui.otherRooms.replaceChildren(...others.map(({ room, count }) => {
    const item = el("li", "other-room");
    item.dataset.room = room;
    const button = el("button", "join-room");
    button.type = "button";
    button.append(
      userText("span", "room-label", `#${room}`),
      el("span", "room-count", `${count} online`),
    );
    button.setAttribute("aria-label", `Join #${room}, ${count} online`);
    button.disabled = !state.live;
    item.append(button);
    return item;
  }));
  const status = state.otherRoomsError !== ""
    ? state.otherRoomsError
    : others.length === 0
    ? "No other rooms. Join one by name with Join room."
    : "";
  if (ui.otherRoomsStatus.textContent !== status) ui.otherRoomsStatus.textContent = status;
}

ui.roomList.addEventListener("click", (event) => {
  const button = event.target instanceof Element ? event.target.closest("button") : null;
  const room = button?.closest("[data-room]")?.dataset.room;
  if (button === null || button === undefined || room === undefined) return;
  ui.roomsError.textContent = "";
  if (button.matches(".room-leave")) leaveRoom(room);
  else showRoom(room);
});

ui.otherRooms.addEventListener("click", (event) => {
  const button = event.target instanceof Element ? event.target.closest("button") : null;
  const room = button?.closest("[data-room]")?.dataset.room;
  if (room === undefined) return;
  ui.roomsError.textContent = "";
  ui.moreRooms.open = false;
  joinRoom(room, (message) => {
    ui.roomsError.textContent = message;
  });
});

// Asked for when the list is opened, then every ROOMS_REFRESH_MS while it stays open.
ui.moreRooms.addEventListener("toggle", () => {
  clearInterval(state.otherRoomsTimer);
  state.otherRoomsTimer = undefined;
  if (!ui.moreRooms.open) return;
  if (state.otherRooms.length === 0 && state.otherRoomsError === "") {
    ui.otherRoomsStatus.textContent = "Loading…";
  }
  refreshOtherRooms();
  state.otherRoomsTimer = setInterval(refreshOtherRooms, ROOMS_REFRESH_MS);
});

ui.moreRooms.addEventListener("keydown", (event) => {
  if (event.key !== "Escape" || !ui.moreRooms.open) return;
  ui.moreRooms.open = false;
  ui.moreRooms.querySelector("summary")?.focus();
});

// ---------------------------------------------------------------------------
// Connection: a ChatClient and the page's answers to its events

// With AUTH_SECRET on the server, open the page as /#token=<jwt>: a fragment
// never reaches server logs. The token is kept for this tab only and offered
// as the `bearer.<jwt>` subprotocol.
function authToken() {
  try {
    const match = /(?:^#|&)token=([^&]+)/.exec(location.hash);
    if (match) {
      sessionStorage.setItem("chat.token", decodeURIComponent(match[1]));
      history.replaceState(null, "", location.pathname + location.search);
    }
    return sessionStorage.getItem("chat.token") ?? "";
  } catch {
    return "";
  }
}

function connect() {
  const token = authToken();
  const chat = new ChatClient({
    url: location.origin,
    username: state.username === "" ? undefined : state.username,
    room: state.room,
    token: token === "" ? undefined : token,
    key: browserKey(),
  });
  state.chat = chat;
  // Handlers check that their client is still the page's: a stale one never acts.
  const on = (type, listener) =>
    chat.on(type, (payload) => state.chat === chat && listener(payload));
  on("state", onState);
  on("welcome", onWelcome);
  on("joined", onJoined);
  on("users", ({ room, users, count }) => room === state.room && setUsers(users, count));
  on("message", ({ frame, replayed, missed }) => {
    if (!replayed && frame.room === state.room) stoppedTyping(frame.username);
    if (takeEcho(frame)) return;
    renderMessage(frame, { live: !replayed });
    if (frame.room === shownKey() && !replayed) markShownRead();
    if (isOwn(frame)) return;
    // Missed while away (replayed after a reconnect) is new to the reader too.
    if (!replayed || missed) countUnread(frame.room);
    if (replayed) return;
    if (mentionsMe(frame.message)) notify(`${frame.sender} in #${frame.room}`, frame.message);
  });
  on("typing", onTyping);
  on("system", ({ frame, replayed }) => {
    renderSystem(frame, !replayed);
    if (!replayed && frame.room === state.room) followTarget(frame);
  });
  on("private", ({ frame, replayed, missed }) => {
    rememberTalk(frame);
    if (!replayed) stoppedTyping(frame.username);
    const talk = noteTalk(frame);
    if (takeEcho(frame)) return;
    renderMessage(frame, { live: !replayed });
    if (isOwn(frame) || (replayed && !missed)) return;
    // Counted beside the person; a private message without identities, beside the room.
    if (talk === undefined) countUnread(state.room);
    if (!replayed) notify(`${frame.sender} (private)`, frame.message);
  });
  on("read", (frame) => onRead(frame));
  on("seen", (frame) => showSeen(frame.with, frame.id));
  on("conversations", (list) => talks.setAll(list));
  on("gap", ({ room }) => renderNotice("Some messages may be missing.", "warning", room));
  on("renamed", ({ to }) => renamed(to));
  on("left", ({ room }) => onLeft(room));
  on("error", (frame) => renderNotice(frame.message, "error"));
  chat.connect();
  showPanels();
}

function showNotifyButton() {
  ui.notifyButton.hidden = !notificationsAsked();
}

/** Whether a message's text mentions this user as @name. */
function mentionsMe(text) {
  return mentions(text, state.username);
}

// Who is typing in the room shown, or to this user.
const typing = new TypingLine(ui.typing);

function onTyping(frame) {
  if (frame.to === undefined && frame.room !== state.room) return;
  typing.show(frame);
}

function stoppedTyping(name) {
  typing.stop(name);
}

function onState(event) {
  clearInterval(state.countdownTimer);
  state.countdownTimer = undefined;
  state.live = event.state === "open";
  if (event.state === "connecting") {
    setStatus("connecting", state.lastReason === "" ? "Connecting…" : "Reconnecting…");
  } else if (event.state === "open") {
    state.lastReason = "";
    connectedStatus();
  } else if (event.state === "reconnecting") {
    state.lastReason = describeClose(event.code ?? 1006, event.reason);
    state.reconnectAt = Date.now() + (event.delayMs ?? 0);
    state.countdownTimer = setInterval(tickCountdown, 1000);
    reconnectingStatus();
  } else if (event.state === "closed") {
    const why = describeClose(event.code ?? 1000, event.reason);
    state.chat = null;
    saveSession(null);
    setStatus("disconnected", `Disconnected: ${why}`);
    ui.joinError.textContent = why;
  }
  showPanels();
}

function onWelcome(frame) {
  const chat = state.chat;
  state.username = frame.username;
  state.heartbeat = frame.heartbeat !== null;
  state.maxMessageBytes = frame.limits.max_message_bytes;
  state.pendingRoom = "";
  // The room shown stays shown across a reconnect; the welcome's room is taken when the
  // page is not in the room shown (the first welcome spells it as the server does).
  if (!chat.rooms.includes(state.room)) {
    const gone = state.room;
    if (logs.has(frame.room)) {
      showRoom(frame.room);
      logs.delete(gone);
    } else {
      const log = logs.get(gone);
      logs.delete(gone);
      state.room = frame.room;
      if (log !== undefined) {
        log.room = frame.room;
        logs.set(frame.room, log);
      }
      setUsers(chat.users(frame.room), chat.userCount(frame.room));
    }
  }
  // A reload: the session's other rooms are joined again, the one shown stays shown.
  const restore = state.restoreRooms;
  state.restoreRooms = [];
  for (const room of restore) {
    if (!chat.rooms.includes(room)) chat.join(room).catch(() => {});
  }
  // A reload: the private conversations are read again (each message once).
  for (const uid of state.restoreTalks.splice(0)) chat.conversation(uid);
  chat.listConversations();
  setRoomInUrl(state.room);
  persistSession();
  connectedStatus();
  showPanels();
}

/** A room is joined (or joined again after a reconnect); one joined from the form or the
 * list is shown before its history arrives, and the others stay. */
function onJoined(frame) {
  logFor(frame.room);
  if (frame.room === state.pendingRoom) {
    state.pendingRoom = "";
    hideInlineForm(ui.switchForm, ui.switchButton);
    showRoom(frame.room);
    ui.message.focus();
    return;
  }
  if (frame.room === state.room) setUsers(frame.users, frame.user_count);
  persistSession();
  renderRooms();
}

function renamed(name) {
  state.username = name;
  saveName(name);
  persistSession();
  ui.username.value = name;
  hideInlineForm(ui.renameForm, ui.renameButton);
  connectedStatus();
  showPanels();
}

/** Reconnects at once when a reconnect is pending (tab visible again, network back). */
function reconnectNow() {
  state.chat?.reconnectNow();
}

function disconnect() {
  const chat = state.chat;
  state.chat = null;
  state.live = false;
  state.pendingRoom = "";
  state.otherRooms = [];
  clearInterval(state.countdownTimer);
  chat?.close();
  saveSession(null);
  // The user chose this: neutral, not the red of a connection lost or refused.
  setStatus("idle", "Disconnected");
  setUsers([]);
  setPrivateTarget("");
  showPanels();
  ui.connect.focus();
}

// ---------------------------------------------------------------------------
// Forms

function hideInlineForm(form, toggle) {
  form.hidden = true;
  toggle.setAttribute("aria-expanded", "false");
  const error = form.querySelector(".error");
  if (error) error.textContent = "";
}

function showInlineForm(form, toggle, input, value) {
  hideInlineForm(
    form === ui.renameForm ? ui.switchForm : ui.renameForm,
    form === ui.renameForm ? ui.switchButton : ui.renameButton,
  );
  form.hidden = false;
  toggle.setAttribute("aria-expanded", "true");
  input.value = value;
  input.focus();
  input.select();
}

ui.joinForm.addEventListener("submit", (event) => {
  event.preventDefault();
  ui.joinError.textContent = "";
  const rawName = ui.username.value.trim();
  const name = rawName === "" ? "" : normalizeName(rawName);
  if (name === undefined) {
    ui.joinError.textContent =
      "Names are 1 to 32 letters, digits, spaces, _ - or . (leave empty to join anonymously).";
    ui.username.focus();
    return;
  }
  const room = roomName(ui.room.value);
  if (room === undefined) {
    ui.joinError.textContent = "Room names are 1 to 32 letters, digits, spaces, _ - or .";
    ui.room.focus();
    return;
  }
  if (name !== "") saveName(name);
  state.username = name;
  state.room = room;
  state.restoreRooms = [];
  state.lastReason = "";
  clearMessages();
  setUsers([]);
  setPrivateTarget("");
  setRoomInUrl(room);
  connect();
  ui.message.focus();
});

ui.disconnect.addEventListener("click", disconnect);
ui.notifyButton.addEventListener("click", () => {
  Notification.requestPermission().then(showNotifyButton, showNotifyButton);
});
ui.retryNow.addEventListener("click", reconnectNow);

ui.renameButton.addEventListener("click", () => {
  if (ui.renameForm.hidden) {
    showInlineForm(ui.renameForm, ui.renameButton, ui.renameInput, state.username);
  } else {
    hideInlineForm(ui.renameForm, ui.renameButton);
  }
});

ui.renameForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const name = normalizeName(ui.renameInput.value);
  if (name === undefined || sameName(name, SYSTEM_SENDER)) {
    ui.renameError.textContent = "Names are 1 to 32 letters, digits, spaces, _ - or .";
    return;
  }
  if (name === state.username || state.chat === null) {
    hideInlineForm(ui.renameForm, ui.renameButton);
    return;
  }
  ui.renameError.textContent = "";
  state.chat.rename(name).catch((error) => {
    ui.renameError.textContent = error.message;
    ui.renameInput.focus();
  });
});

ui.switchButton.addEventListener("click", () => {
  if (ui.switchForm.hidden) {
    showInlineForm(ui.switchForm, ui.switchButton, ui.switchInput, "");
  } else {
    hideInlineForm(ui.switchForm, ui.switchButton);
  }
});

ui.switchForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const room = roomName(ui.switchInput.value);
  if (room === undefined) {
    ui.switchError.textContent = "Room names are 1 to 32 letters, digits, spaces, _ - or .";
    return;
  }
  if (state.chat === null) {
    hideInlineForm(ui.switchForm, ui.switchButton);
    return;
  }
  // Joins without leaving; a room the page is in already is only shown.
  if (state.chat.rooms.includes(room)) {
    hideInlineForm(ui.switchForm, ui.switchButton);
    showRoom(room);
    ui.message.focus();
    return;
  }
  ui.switchError.textContent = "";
  joinRoom(room, (message) => {
    ui.switchError.textContent = message;
    ui.switchInput.focus();
  });
});

for (const form of [ui.renameForm, ui.switchForm]) {
  const toggle = form === ui.renameForm ? ui.renameButton : ui.switchButton;
  form.querySelector(".cancel")?.addEventListener("click", () => {
    hideInlineForm(form, toggle);
    toggle.focus();
  });
  form.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    hideInlineForm(form, toggle);
    toggle.focus();
  });
}

ui.userList.addEventListener("click", (event) => {
  const target = event.target instanceof Element ? event.target.closest("button[data-user]") : null;
  if (target === null) return;
  const name = target.dataset.user ?? "";
  // Written to from the room: a conversation shown gives way to it.
  if (state.talk !== "") showRoom(state.room);
  setPrivateTarget(sameName(name, state.privateTo) ? "" : name);
  ui.message.focus();
});

ui.privateCancel.addEventListener("click", () => {
  setPrivateTarget("");
  ui.message.focus();
});

/** Where the composer sends: the room shown, or the person of the private bar. */
function sendOptions() {
  return state.privateTo === "" ? { room: state.room } : { to: state.privateTo, room: state.room };
}

function checkSize() {
  const bytes = state.chat?.messageBytes(ui.message.value, sendOptions()) ?? 0;
  const over = bytes > state.maxMessageBytes;
  ui.message.setAttribute("aria-invalid", String(over));
  ui.composerError.textContent = over
    ? `Message too long: ${bytes} of at most ${state.maxMessageBytes} bytes.`
    : "";
  return !over;
}

ui.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = ui.message.value;
  if (text.trim() === "" || state.chat === null) return;
  if (!checkSize()) return;
  // Queued by the client while reconnecting or paced under the rate limit: the text box
  // clears at once and the message shows as pending until its fate: stored, or failed
  // with the reason and a Retry button.
  sendMessage(text, sendOptions());
  ui.message.value = "";
  ui.composerError.textContent = "";
  ui.message.focus();
});

ui.message.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    ui.composer.requestSubmit();
  } else if (event.key === "Escape" && state.privateTo !== "") {
    setPrivateTarget("");
  }
});

ui.message.addEventListener("input", () => {
  // Never for an empty box; the client sends at most one every 2 s.
  if (ui.message.value.trim() !== "") {
    state.chat?.typing(sendOptions());
  }
  // Encode only once the text could be near the limit: a UTF-16 unit is at most 3 bytes.
  if (ui.message.value.length * 3 > state.maxMessageBytes || ui.composerError.textContent) {
    checkSize();
  }
});

ui.messages.addEventListener("scroll", () => {
  state.pinned = isAtBottom();
  if (state.pinned) {
    ui.newMessages.hidden = true;
    markShownRead();
  }
});

// The log's box shrinks when the private bar, a form or a phone's keyboard opens, and its
// scroll position stays: a log that was at its bottom is put back there.
new ResizeObserver(() => {
  if (state.pinned) scrollToBottom();
}).observe(ui.messages);

ui.newMessages.addEventListener("click", () => {
  scrollToBottom();
  ui.message.focus();
});

// A hidden tab's timers are throttled and it may be frozen: it asks for a heartbeat ten
// times slower (the most the server grants) rather than be dropped, and takes the
// server's own again, or reconnects at once, when shown.
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") {
    state.chat?.setHeartbeatInterval();
    reconnectNow();
    // What came to the room shown while hidden is seen now.
    const log = logs.get(state.room);
    if (log !== undefined) log.unread = 0;
    markShownRead();
    renderRooms();
  } else {
    state.chat?.setHeartbeatInterval(HIDDEN_HEARTBEAT_MS);
    updateTitle();
  }
});
addEventListener("online", reconnectNow);

// ---------------------------------------------------------------------------
// Start

{
  const room = roomName(new URL(location.href).searchParams.get("room") ?? "");
  if (room !== undefined) ui.room.value = room;
  ui.username.value = loadName();
  // Nothing was tried yet: neutral, not the red "disconnected" of a failure.
  setStatus("idle", "Not connected");
  showNotifyButton();
  setUsers([]);
  showPanels();
  const session = loadSession();
  if (session === null) {
    ui.username.focus();
  } else {
    // A reload of a connected tab: back to the same name and room without pressing Connect.
    ui.username.value = state.username = session.username;
    ui.room.value = state.room = session.room;
    state.restoreRooms = session.rooms.filter((room) => room !== session.room);
    state.restoreTalks = session.talks;
    state.talks = new Set(session.talks);
    connect();
  }
}
