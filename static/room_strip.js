// The room strip: the rooms the page is in, each with what came while it was not shown, and
// the other rooms of the server (GET /api/rooms) to join. Room names reach the DOM as text
// only.

import { el, userText } from "./dom.js";
import { logFor, logs, shownKey, state, ui } from "./page_state.js";
import { updateTitle } from "./reads.js";
import { authToken } from "./session.js";

/** The rooms the page is in, the one shown among them even before the welcome. */
function myRooms() {
  const rooms = state.chat?.rooms ?? [];
  return rooms.includes(state.room) ? rooms : [state.room, ...rooms];
}

/** A message (not a notice) came to `room`: counted unless it is in view. */
export function countUnread(room) {
  if (room === shownKey() && document.visibilityState !== "hidden") return;
  logFor(room).unread++;
  renderRooms();
}

export function renderRooms() {
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

/** The rooms of GET /api/rooms (with the tab's JWT when the server asks for one). */
export async function refreshOtherRooms() {
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
