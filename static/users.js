// The people of the room shown: the online list (each a button to write to privately) and
// the line saying who is typing. Names reach the DOM as text only.

import { el, userText } from "./dom.js";
import { sameName, state, ui } from "./page_state.js";
import { TypingLine } from "./typing.js";

/** Shows the online users; `count` is the room's total, more than the list in a big room. */
export function setUsers(users, count = users.length) {
  state.users = [...new Set(users)];
  state.userCount = Math.max(count, state.users.length);
  renderUsers();
}

export function renderUsers() {
  const items = state.users.map((name) => {
    const item = el("li", "user");
    if (sameName(name, state.username)) {
      item.classList.add("me");
      item.append(userText("span", "user-name", name), el("span", "you", "you"));
    } else {
      const button = userText("button", "user-name", name);
      button.type = "button";
      button.dataset.user = name;
      button.setAttribute("aria-label", `Send a private message to ${name}`);
      if (state.privateTo !== "" && sameName(state.privateTo, name)) {
        button.setAttribute("aria-pressed", "true");
      }
      item.append(button);
    }
    return item;
  });
  ui.userList.replaceChildren(...items);
  ui.userCount.textContent = String(state.userCount);
}

// Who is typing in the room shown, or to this user.
export const typing = new TypingLine(ui.typing);

export function onTyping(frame) {
  if (frame.to === undefined && frame.room !== state.room) return;
  typing.show(frame);
}

export function stoppedTyping(name) {
  typing.stop(name);
}
