// What a tab keeps across a reload: its session (name, rooms, conversations) in the tab's
// storage, the room shown in the address, and the JWT given in the address's fragment.

import { saveSession } from "./storage.js";
import { state } from "./page_state.js";

// Private conversations a tab keeps reading again after a reload.
const TALKS_KEPT = 5;

// The people written with privately (at most TALKS_KEPT, the most recent), kept in the
// tab's session so a reload reads their conversations again.
export function rememberTalk(frame) {
  const chat = state.chat;
  if (chat === null) return;
  const other = frame.uid === chat.uid ? frame.to_uid : frame.uid;
  if (typeof other !== "string" || other === chat.uid) return;
  state.talks.delete(other);
  state.talks.add(other);
  if (state.talks.size > TALKS_KEPT) state.talks.delete(state.talks.values().next().value);
  persistSession();
}

/** The session of a connected tab: its name, the room shown and every room it is in. */
export function persistSession() {
  if (state.chat === null) return;
  const rooms = state.chat.rooms;
  saveSession({
    username: state.username,
    room: state.room,
    rooms: rooms.includes(state.room) ? rooms : [state.room, ...rooms],
    talks: [...state.talks],
  });
}

export function setRoomInUrl(room) {
  const url = new URL(location.href);
  if (url.searchParams.get("room") === room) return;
  url.searchParams.set("room", room);
  history.replaceState(null, "", url);
}

// With AUTH_SECRET on the server, open the page as /#token=<jwt>: a fragment
// never reaches server logs. The token is kept for this tab only and offered
// as the `bearer.<jwt>` subprotocol.
export function authToken() {
  try {
    const match = /(?:^#|&)token=([^&]+)/.exec(location.hash);
    if (match) {
      sessionStorage.setItem("chat.token", decodeURIComponent(match[1]));
      history.replaceState(null, "", location.pathname + location.search);
    }
    return sessionStorage.getItem("chat.token") ?? "";
  } catch {
    return "";
  }
}
