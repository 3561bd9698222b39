// The people this identity talks with privately, most recent first, each with how many of
// their messages are unread: the server's list (`conversations`) on each welcome, then
// every private message and read position as it comes. Names reach the DOM as text only.

/** Conversations listed at most. */
const LISTED = 20;

/**
 * @typedef {{ uid: string, name: string, lastId: number, readId: number, theirs: number }} Talk
 * `theirs`: the newest id of a message from them (a conversation's ids count both sides,
 * and one's own messages are never unread).
 */

/** The list of conversations beside the log. */
export class TalkList {
  /** @type {Map<string, Talk>} Most recent last. */
  #talks = new Map();
  #list;
  #section;
  #onPick;
  /** The uid of the conversation shown; "" for none. */
  #current = "";

  /**
   * A list drawn into `list` (inside `section`, hidden while empty); `onPick(uid, name)`
   * when a person is chosen.
   */
  constructor({ list, section, onPick }) {
    this.#list = list;
    this.#section = section;
    this.#onPick = onPick;
  }

  /** Takes the server's list (newest first), keeping what this page knows beyond it. */
  setAll(summaries) {
    for (const s of [...summaries].reverse()) {
      const talk = this.#talk(s.with, s.name);
      talk.lastId = Math.max(talk.lastId, s.last_id);
      talk.readId = Math.max(talk.readId, s.read_id);
      // Unknown who wrote the newest: counted as theirs unless read.
      talk.theirs = Math.max(talk.theirs, s.last_id);
    }
    this.render();
  }

  /** A private message with `uid` (`own`: written by this identity, which has read it). */
  message(uid, name, { id, own }) {
    const talk = this.#talk(uid, name);
    if (typeof id === "number") {
      talk.lastId = Math.max(talk.lastId, id);
      if (own) talk.readId = Math.max(talk.readId, id);
      else talk.theirs = Math.max(talk.theirs, id);
    }
    this.render();
  }

  /** This identity read the conversation with `uid` up to `id`. */
  read(uid, id) {
    const talk = this.#talks.get(uid);
    if (talk === undefined || id <= talk.readId) return;
    talk.readId = id;
    this.render();
  }

  /** Marks the conversation shown in the list ("" for none). */
  setCurrent(uid) {
    this.#current = uid;
    this.render();
  }

  /** Unread messages of the person of `uid`. */
  unread(uid) {
    const talk = this.#talks.get(uid);
    return talk === undefined || talk.theirs <= talk.readId ? 0 : talk.lastId - talk.readId;
  }

  /** Unread messages of every conversation, for the title. */
  total() {
    let total = 0;
    for (const uid of this.#talks.keys()) total += this.unread(uid);
    return total;
  }

  /** The newest id known with `uid`; 0 when none. */
  last(uid) {
    return this.#talks.get(uid)?.lastId ?? 0;
  }

  /** Draws the list, most recent first. */
  render() {
    const items = [...this.#talks.values()].reverse().map((talk) => this.#item(talk));
    this.#list.replaceChildren(...items);
    this.#section.hidden = items.length === 0;
  }

  #item(talk) {
    const item = document.createElement("li");
    item.className = "talk";
    item.dataset.uid = talk.uid;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "talk-button";
    if (talk.uid === this.#current) button.setAttribute("aria-current", "true");
    const name = document.createElement("span");
    name.className = "talk-name";
    name.dir = "auto";
    name.textContent = talk.name;
    button.append(name);
    const count = this.unread(talk.uid);
    if (count > 0) {
      const badge = document.createElement("span");
      badge.className = "unread";
      badge.textContent = String(count);
      badge.setAttribute("aria-hidden", "true");
      const spoken = document.createElement("span");
      spoken.className = "visually-hidden";
      spoken.textContent = `, ${count} unread`;
      button.append(badge, spoken);
    }
    button.addEventListener("click", () => this.#onPick(talk.uid, talk.name));
    item.append(button);
    return item;
  }

  /** The talk of `uid`, made the most recent; its name as last seen. */
  #talk(uid, name) {
    const talk = this.#talks.get(uid) ?? { uid, name, lastId: 0, readId: 0, theirs: 0 };
    if (typeof name === "string" && name !== "") talk.name = name;
    this.#talks.delete(uid);
    this.#talks.set(uid, talk);
    if (this.#talks.size > LISTED) this.#talks.delete(this.#talks.keys().next().value);
    return talk;
  }
}
