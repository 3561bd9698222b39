// Read positions: stored by the server for this browser's key (or token), so every tab
// and a reload know what was read. The room shown is read while the tab is visible and
// its log at the bottom; a conversation, when its person is the private target.

import { el } from "./dom.js";
import { isOwn, logFor, logs, shownKey, state, talkUidOf, ui } from "./page_state.js";
import { TalkList } from "./talks.js";

const BASE_TITLE = document.title;

// A pick shows the conversation, which rooms.js does (it imports this module): it gives its
// handler here once loaded, so the two modules do not import each other.
let picked = (_uid, _name) => {};

/** Sets what choosing a person in the list of conversations does. */
export function onTalkPicked(handler) {
  picked = handler;
}

/** The people this identity talks with privately, beside the log. */
export const talks = new TalkList({
  list: ui.talkList,
  section: ui.talks,
  onPick: (uid, name) => picked(uid, name),
});

/** Whether the person is looking at the newest messages of the room shown. */
export function looking() {
  return document.visibilityState === "visible" && state.pinned;
}

/** Marks what is shown read: the room, or the conversation. */
export function markShownRead() {
  const chat = state.chat;
  if (chat === null || !looking()) return;
  if (state.talk === "") return void chat.markRead({ room: state.room });
  chat.markRead({ with: state.talk, to: state.privateTo });
  talks.read(state.talk, talks.last(state.talk));
}

/** A private frame's conversation in the list; its uid, or undefined without identities. */
export function noteTalk(frame) {
  const uid = talkUidOf(frame);
  if (uid === undefined) return undefined;
  const own = isOwn(frame);
  const name = own ? frame.to : frame.sender;
  talks.message(uid, name, { id: frame.id, own });
  // One's own messages are read; theirs when their conversation is in view.
  if (own || (looking() && state.talk === uid)) {
    state.chat?.markRead({ with: uid, to: name });
    talks.read(uid, frame.id);
  }
  return uid;
}

/** "New messages" above the first message of others after `id`; none when all are read. */
export function placeDivider(room, id) {
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
export function showSeen(uid, id) {
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
// The unread total, in the title of a hidden tab

function totalUnread() {
  let total = talks.total();
  for (const log of logs.values()) total += log.unread;
  return total;
}

/** A hidden tab's title carries the unread total: "(3) Deno Chat". */
export function updateTitle() {
  const total = totalUnread();
  const title = document.visibilityState === "hidden" && total > 0
    ? `(${total}) ${BASE_TITLE}`
    : BASE_TITLE;
  if (document.title !== title) document.title = title;
}
