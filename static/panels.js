// What the page shows of its connection: the status line, the join form or the session's
// panels, and the inline forms (rename, join a room) that open one at a time.

import { state, ui } from "./page_state.js";
import { renderRooms } from "./room_strip.js";

// ---------------------------------------------------------------------------
// Status line

/**
 * The status text is a live region: it is written only when the state or its reason
 * changes, so screen readers announce each change once. The reconnect countdown ticks
 * in its own element, outside the live region.
 */
export function setStatus(kind, text) {
  ui.status.dataset.state = kind;
  ui.app.dataset.state = kind;
  if (ui.statusText.textContent !== text) ui.statusText.textContent = text;
  ui.retryNow.hidden = kind !== "reconnecting";
  if (kind !== "reconnecting") {
    ui.statusCountdown.hidden = true;
    ui.statusCountdown.textContent = "";
  }
}

export function connectedStatus() {
  const heartbeat = state.heartbeat ? " · heartbeat on" : "";
  setStatus("connected", `Connected as ${state.username}${heartbeat}`);
}

export function reconnectingStatus() {
  const reason = state.lastReason === "" ? "" : ` (${state.lastReason})`;
  setStatus("reconnecting", `Reconnecting…${reason}`);
  tickCountdown();
}

export function tickCountdown() {
  const seconds = Math.max(1, Math.ceil((state.reconnectAt - Date.now()) / 1000));
  ui.statusCountdown.textContent = `retry in ${seconds} s`;
  ui.statusCountdown.hidden = false;
}

// ---------------------------------------------------------------------------
// Panels and forms

/** The join form, or the session's panels while the user wants to be connected. */
export function showPanels() {
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

export function hideInlineForm(form, toggle) {
  form.hidden = true;
  toggle.setAttribute("aria-expanded", "false");
  const error = form.querySelector(".error");
  if (error) error.textContent = "";
}

export function showInlineForm(form, toggle, input, value) {
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
