/**
 * The public identity of a user, shown on the frames they author: a hash of
 * their user id (a token's `sub`, or a browser key's hash), so that clients
 * recognise their own messages across renames and reloads while the id
 * itself (an email in some deployments) is never shown.
 *
 * @module
 */

import { createHash } from "node:crypto";

/** Characters of the public id: 96 bits of the hash in base64url. */
const LENGTH = 16;

/**
 * The public id of a user id: `u` and 16 base64url characters of its
 * SHA-256; the same user id always gives the same public id.
 *
 * @example
 * ```ts
 * import { publicUserId } from "./user_ids.ts";
 * publicUserId("alice-sub") === publicUserId("alice-sub"); // true
 * ```
 */
export function publicUserId(userId: string): string {
  const digest = createHash("sha256").update(`uid:${userId}`).digest("base64url");
  return `u${digest.slice(0, LENGTH)}`;
}

/** The public id of a connection with no user id: its own, for its life only. */
export function connectionUserId(connectionId: string): string {
  return `c${connectionId.replaceAll("-", "").slice(0, LENGTH)}`;
}

/** Whether a public uid is an identity's (a token's or a browser key's), not one connection's. */
export function isIdentity(uid: string): boolean {
  return uid.startsWith("u");
}
