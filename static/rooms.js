// Rooms and conversations: the page stays in every room it joined and shows one of them, or
// a conversation with one person instead; joining shows the room once joined, leaving never
// leaves the last one.

import { announce, isAtBottom, renderNotice, scrollToBottom, trim } from "./messages.js";
import { logFor, logs, shownKey, state, ui } from "./page_state.js";
import { markShownRead, onTalkPicked, showSeen, talks } from "./reads.js";
import { renderRooms } from "./room_strip.js";
import { showPanels } from "./panels.js";
import { persistSession, setRoomInUrl } from "./session.js";
import { renderUsers, setUsers, typing } from "./users.js";

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
export function showRoom(room) {
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
export function joinRoom(room, onError) {
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
export function leaveRoom(room) {
  const chat = state.chat;
  if (chat === null || !state.live) return;
  const others = chat.rooms.filter((r) => r !== room);
  if (others.length === 0) return;
  if (room === state.room) showRoom(others[0]);
  state.leaving.add(room);
  chat.leave(room);
}

/** The page is no longer in `room` (it left, or the server took it out). */
export function onLeft(room) {
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

/** Writes privately to `name` from now on ("" for the room). */
export function setPrivateTarget(name) {
  // The conversation shown is the private target: without one, back to the room.
  if (name === "" && state.talk !== "") return showRoom(state.room);
  state.privateTo = name;
  ui.privateTarget.hidden = name === "";
  ui.privateName.textContent = name;
  ui.composer.classList.toggle("is-private", name !== "");
  ui.message.placeholder = name === "" ? "Type a message…" : `Private message to ${name}…`;
  renderUsers();
}

/** A person chosen in the list: their conversation shown (the rest read again), and read. */
function pickTalk(uid, name) {
  showTalk(uid, name);
  state.chat?.conversation(uid);
  ui.message.focus();
}

onTalkPicked(pickTalk);
