/**
 * The sentences the server's own frames carry in `message`, with
 * {@linkcode SYSTEM_SENDER} as their `sender`, so a client that renders
 * every frame as `${sender}: ${message}` (seed 02's) shows people a line
 * instead of `undefined: undefined`.
 *
 * @module
 */

import { type LeftFrame, SYSTEM_SENDER } from "./protocol.ts";
import type { UsersPage } from "./registry.ts";

/** Names listed at most in a `users` frame's sentence; more are counted. */
export const MAX_LISTED_USERS = 20;

/** `1 other` or `N others`; `nobody else` for none. */
function others(count: number): string {
  if (count === 0) return "nobody else";
  return count === 1 ? "1 other" : `${count} others`;
}

/**
 * How many of a room's users are someone other than `username`: the page
 * lists them all, or the first of them in a room `username` is in.
 */
function othersIn(page: UsersPage, username: string): number {
  const { users, count } = page;
  const listed = users.filter((user) => user !== username).length;
  if (count === users.length) return listed;
  // `username` is on the page, or among the rest.
  return listed + (count - users.length) - (listed === users.length ? 1 : 0);
}

/**
 * A `welcome`'s sentence: who you are, where, and with how many. `users`
 * may be the first page of the room's users.
 */
export function welcomeText(username: string, room: string, users: UsersPage): string {
  return `Welcome, ${username}! You are in ${room} with ${others(othersIn(users, username))}.`;
}

/** A `joined` frame's sentence, for a join or a resume; `users` as in {@linkcode welcomeText}. */
export function joinedText(username: string, room: string, users: UsersPage): string {
  return `You are in ${room} with ${others(othersIn(users, username))}.`;
}

/** A `history` frame's sentence. */
export function historyText(room: string, count: number, more: boolean): string {
  const plural = count === 1 ? "" : "s";
  return `${count} earlier message${plural} of ${room}${more ? "; more follow" : ""}.`;
}

/** A `left` frame's sentence: `closed` when an operator closed the room. */
export function leftText(room: string, closed = false): string {
  return closed ? `${room} was closed; you are no longer in it.` : `You left ${room}.`;
}

/** A `left` frame: `closed` when an operator closed the room. */
export function leftFrame(room: string, closed = false): LeftFrame {
  return { type: "left", room, sender: SYSTEM_SENDER, message: leftText(room, closed) };
}

/** A join or leave notice's sentence: `alice joined the room`, `alice, bob and 3 others left the room`. */
export function presenceText(event: "join" | "leave", users: readonly string[]): string {
  const verb = event === "join" ? "joined" : "left";
  if (users.length > 3) {
    return `${users[0]}, ${users[1]} and ${others(users.length - 2)} ${verb} the room`;
  }
  const last = users.at(-1);
  const who = users.length === 1 ? last : `${users.slice(0, -1).join(", ")} and ${last}`;
  return `${who} ${verb} the room`;
}

/**
 * A `users` frame's sentence: up to {@linkcode MAX_LISTED_USERS} names, the
 * rest counted. `users` lists the room's first users (at least that many,
 * when it has them) or all; `count` is how many it has.
 */
export function usersText(room: string, users: UsersPage): string {
  const { count } = users;
  if (count === 0) return `Nobody is online in ${room}.`;
  const listed = users.users.slice(0, MAX_LISTED_USERS).join(", ");
  const rest = count - MAX_LISTED_USERS;
  return `Online in ${room} (${count}): ${listed}${rest > 0 ? ` and ${rest} more` : ""}.`;
}
