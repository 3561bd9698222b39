// Connection: a ChatClient and the page's answers to its events.

import { ChatClient, describeClose, mentions } from "./chat_client.js";
import { renderMessage, renderNotice, renderSystem } from "./messages.js";
import { notify } from "./notify.js";
import { isOwn, logFor, logs, sameName, shownKey, state, ui } from "./page_state.js";
import {
  connectedStatus,
  hideInlineForm,
  reconnectingStatus,
  setStatus,
  showPanels,
  tickCountdown,
} from "./panels.js";
import { looking, markShownRead, noteTalk, placeDivider, showSeen, talks } from "./reads.js";
import { countUnread, renderRooms } from "./room_strip.js";
import { onLeft, setPrivateTarget, showRoom } from "./rooms.js";
import { takeEcho } from "./sending.js";
import { authToken, persistSession, rememberTalk, setRoomInUrl } from "./session.js";
import { browserKey, saveName, saveSession } from "./storage.js";
import { onTyping, setUsers, stoppedTyping } from "./users.js";

/** A new ChatClient for the name and room in `state`; its events drive the page. */
export function connect() {
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

/** Whether a message's text mentions this user as @name. */
function mentionsMe(text) {
  return mentions(text, state.username);
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

/** Conversations listed again after a reconnect at most this long after it, at random. */
const RELIST_SPREAD_MS = 10_000;
/** @type {WeakSet<ChatClient>} Clients whose conversations were listed once. */
const listed = new WeakSet();

/**
 * Lists the conversations (new ones may have begun while away): at once on a client's first
 * welcome, and spread over RELIST_SPREAD_MS after a reconnect, so a server restart's every
 * page does not ask in the same second.
 */
function listConversations(chat) {
  if (!listed.has(chat)) {
    listed.add(chat);
    chat.listConversations();
    return;
  }
  setTimeout(() => {
    if (state.chat === chat && chat.state === "open") chat.listConversations();
  }, Math.random() * RELIST_SPREAD_MS);
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
  listConversations(chat);
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

/** The server renamed this user (asked for from the rename form). */
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
export function reconnectNow() {
  state.chat?.reconnectNow();
}

/** The user's Disconnect: the client closed, the session forgotten. */
export function disconnect() {
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
// Answers to single events

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

/** Follows the private target through a leave or a rename. */
function followTarget(frame) {
  if (state.privateTo === "" || frame.user === undefined) return;
  // A coalesced leave names everyone who left in `users`.
  const gone = frame.event === "leave" &&
    (frame.users ?? [frame.user]).find((user) => sameName(state.privateTo, user));
  if (gone) {
    setPrivateTarget("");
    renderNotice(`${gone} left; private message cancelled.`);
  } else if (frame.event === "rename" && sameName(state.privateTo, frame.old_name ?? "")) {
    setPrivateTarget(frame.user);
  }
}
