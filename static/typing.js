// "alice is typing…": each typist shown for TYPING_TTL_MS after their last typing frame,
// or until their message arrives.

import { nameKey, TYPING_TTL_MS } from "./chat_client.js";

/** The line under the log that says who is typing. */
export class TypingLine {
  /** @type {Map<string, { name: string, private: boolean, until: number }>} */
  #typists = new Map();
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #timer;
  #element;

  /** A line written into `element`. */
  constructor(element) {
    this.#element = element;
  }

  /** Shows the typist of a `typing` frame (`to` set: typing to this user). */
  show(frame) {
    this.#typists.set(nameKey(frame.user), {
      name: frame.user,
      private: frame.to !== undefined,
      until: Date.now() + TYPING_TTL_MS,
    });
    this.#render();
  }

  /** Stops showing `name` (their message arrived). */
  stop(name) {
    if (this.#typists.delete(nameKey(name))) this.#render();
  }

  /** Shows nobody (another room is shown). */
  clear() {
    this.#typists.clear();
    this.#render();
  }

  #render() {
    clearTimeout(this.#timer);
    const now = Date.now();
    for (const [key, typist] of this.#typists) if (typist.until <= now) this.#typists.delete(key);
    const list = [...this.#typists.values()];
    let text = "";
    if (list.length === 1) {
      text = `${list[0].name} is typing${list[0].private ? " to you" : ""}…`;
    } else if (list.length === 2) {
      text = `${list[0].name} and ${list[1].name} are typing…`;
    } else if (list.length > 2) {
      text = "Several people are typing…";
    }
    this.#element.textContent = text;
    if (list.length > 0) {
      const next = Math.min(...list.map((typist) => typist.until));
      this.#timer = setTimeout(() => this.#render(), next - now);
    }
  }
}
