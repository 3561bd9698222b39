// One's own messages: shown at once as pending, then stored (the echo is not shown
// again) or failed with the reason and a Retry button.

import { el, timeElement, userText } from "./dom.js";
import { announce, listOf, renderInto, renderMessage } from "./messages.js";
import { logFor, state, talkKeyOf, ui } from "./page_state.js";

/** @type {{ text: string, options: { room: string, to?: string }, cid: string, item: HTMLElement }[]} */
let outbox = [];
/** Client ids of one's own messages already on screen: their echoes are not shown again. */
const shownCids = new Set();

function rememberCid(cid) {
  shownCids.add(cid);
  if (shownCids.size > 1000) shownCids.delete(shownCids.values().next().value);
}

export function sendMessage(text, options) {
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
export function takeEcho(frame) {
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

/** Forgets the messages waiting for their fate (the log they were shown in is cleared). */
export function clearOutbox() {
  outbox = [];
}
