// The log: messages, notices and day separators rendered into the log of their room or
// conversation, one person's messages in a row grouped under one header, and the log shown
// kept at its bottom unless the user scrolled up.

import { nameKey } from "./chat_client.js";
import { dayLabel } from "./days.js";
import { el, timeElement, userText } from "./dom.js";
import { linkify } from "./links.js";
import { isOwn, logFor, logs, shownKey, state, talkKeyOf, ui } from "./page_state.js";

// Within this many pixels of the bottom the log counts as "at the bottom".
const STICKY_PX = 48;
// Items kept per room not shown (the room shown keeps all of its own).
const KEPT_ITEMS = 500;

export function isAtBottom() {
  const log = ui.messages;
  return log.scrollHeight - log.scrollTop - log.clientHeight <= STICKY_PX;
}

export function scrollToBottom() {
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

export function announce(text) {
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

// ---------------------------------------------------------------------------
// Room logs: the log shown is #messages; another room's or conversation's is its holder.

/** The list a room's items go to: #messages for the room shown. */
export function listOf(log) {
  return log.room === shownKey() ? ui.messages : log.holder;
}

export function trim(list) {
  while (list.childElementCount > KEPT_ITEMS) list.firstElementChild?.remove();
}

// ---------------------------------------------------------------------------
// Days and groups: a separator before the first item of each day, and one person's
// messages in a row (within GROUP_MS of the one before) under one header.

const GROUP_MS = 5 * 60 * 1000;

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
 * Renders a frame where it belongs: a room's message in its room; a private message in the
 * room shown (as the seed shows them), or in its conversation while that is shown, and, one
 * between identities, in its conversation's log too, so the conversation is whole there.
 * Returns its item. `pending`: one's own, just sent, shown at once and waiting for its fate.
 */
export function renderMessage(frame, { live = true, pending = false } = {}) {
  if (frame.type !== "private") return renderInto(logFor(frame.room), frame, { live, pending });
  const talk = talkKeyOf(frame);
  const key = talk !== undefined && talk === shownKey() ? talk : state.room;
  const item = renderInto(logFor(key), frame, { live, pending });
  // One's own pending message is copied once stored (see `stored` in sending.js).
  if (talk !== undefined && talk !== key && !pending) {
    renderInto(logFor(talk), frame, { live: false, pending: false });
  }
  return item;
}

/** Renders a message frame into one log. */
export function renderInto(log, frame, { live, pending }) {
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
// Notices

export function renderSystem(frame, live) {
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
export function renderNotice(text, kind = "notice", room = shownKey()) {
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

/** Empties the log shown and forgets every room's; the outbox is emptied by sending.js. */
export function clearMessages() {
  ui.messages.replaceChildren();
  logs.clear();
  ui.newMessages.hidden = true;
  state.pinned = true;
}
