// What the page keeps in the browser: the last name (localStorage), this browser's key
// (localStorage) and this tab's session (sessionStorage). Storage can be off (privacy
// settings): then nothing is kept and the page works without it.

import { newKey, roomName } from "./chat_client.js";

const NAME_KEY = "chat.username";
const KEY_KEY = "chat.key";
const SESSION_KEY = "chat.session";

export function loadName() {
  try {
    return localStorage.getItem(NAME_KEY) ?? "";
  } catch {
    // Storage can be off (privacy settings); the page works without it.
    return "";
  }
}

export function saveName(name) {
  try {
    localStorage.setItem(NAME_KEY, name);
  } catch {
    // See loadName.
  }
}

// This browser's key: its tabs present it, so they may share one name that other browsers
// cannot take. Without storage each tab is a browser of its own.
export function browserKey() {
  try {
    let key = localStorage.getItem(KEY_KEY);
    if (key === null) {
      key = newKey();
      localStorage.setItem(KEY_KEY, key);
    }
    return key;
  } catch {
    return newKey();
  }
}

// The session of this tab (its name and room once welcomed), so a reload reconnects by itself.
export function saveSession(session) {
  try {
    if (session === null) sessionStorage.removeItem(SESSION_KEY);
    else sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
  } catch {
    // See loadName.
  }
}

export function loadSession() {
  try {
    const session = JSON.parse(sessionStorage.getItem(SESSION_KEY) ?? "null");
    if (typeof session?.username !== "string" || typeof session?.room !== "string") return null;
    const rooms = Array.isArray(session.rooms)
      ? session.rooms.filter((room) => typeof room === "string" && roomName(room) === room)
      : [];
    // The uids of the people this tab wrote with privately: their conversations are read again.
    const talks = Array.isArray(session.talks)
      ? session.talks.filter((uid) => typeof uid === "string" && /^[uc][\w-]{16}$/.test(uid))
      : [];
    return { username: session.username, room: session.room, rooms, talks };
  } catch {
    return null;
  }
}
