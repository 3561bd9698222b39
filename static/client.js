// The chat page: the UI over ChatClient (chat_client.js, built from client/ by
// `deno task build`), which speaks the protocol: reconnects, resumes without
// duplicates, heartbeats, and sends with a fate for each message.
//
// Every piece of user-supplied text reaches the DOM through textContent only,
// so a message like `<img src=x onerror=alert(1)>` is shown, never parsed.

// It wires the page's parts: its state (page_state.js), the log (messages.js), one's own
// messages (sending.js), the rooms (rooms.js, room_strip.js), read positions (reads.js), the
// people (users.js), the status and forms (panels.js) and the connection (connection.js).
// Here: the controls' event listeners, and the start.

import { normalizeName, roomName, SYSTEM_SENDER } from "./chat_client.js";
import { connect, disconnect, reconnectNow } from "./connection.js";
import { dayLabel } from "./days.js";
import { clearMessages, isAtBottom, scrollToBottom } from "./messages.js";
import { notificationsAsked } from "./notify.js";
import { logs, sameName, state, ui } from "./page_state.js";
import { hideInlineForm, setStatus, showInlineForm, showPanels } from "./panels.js";
import { markShownRead, updateTitle } from "./reads.js";
import { refreshOtherRooms, renderRooms } from "./room_strip.js";
import { joinRoom, leaveRoom, setPrivateTarget, showRoom } from "./rooms.js";
import { clearOutbox, sendMessage } from "./sending.js";
import { setRoomInUrl } from "./session.js";
import { loadName, loadSession, saveName } from "./storage.js";
import { setUsers } from "./users.js";

// The separators' labels, exported for the tests (they import the page module).
export { dayLabel };

// The server grants at most ten times its interval; asking for more gets that.
const HIDDEN_HEARTBEAT_MS = 10 * 60_000;

// The list of other rooms, while open, is asked for again this often.
const ROOMS_REFRESH_MS = 30_000;

function showNotifyButton() {
  ui.notifyButton.hidden = !notificationsAsked();
}

// ---------------------------------------------------------------------------
// Room strip

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
// Forms

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
  clearOutbox();
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
