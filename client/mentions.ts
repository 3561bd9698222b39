/**
 * Whether a message mentions a user as `@name`, names compared as the
 * server compares them (case, width and lookalike forms folded).
 *
 * @module
 */

import { nameKey } from "../chat/protocol.ts";

// `@` not inside a word (an address's `anne@example.com` is none) and a name's characters;
// a second word is tried too, for names with a space.
const MENTION = /(?<![\p{L}\p{M}\p{N}_.-])@([\p{L}\p{M}\p{N}_.-]+(?: [\p{L}\p{M}\p{N}_.-]+)?)/gu;

/**
 * True when `text` holds `@name` for `name` (`@Anne Marie` for a two-word
 * name, or `@anne,` for `Anne`).
 *
 * @example
 * ```ts
 * import { mentions } from "./mentions.ts";
 * mentions("hey @ANNE, look", "Anne"); // true
 * mentions("annex", "Anne"); // false
 * ```
 */
export function mentions(text: string, name: string): boolean {
  if (name === "") return false;
  const key = nameKey(name);
  for (const match of text.matchAll(MENTION)) {
    const words = match[1]!;
    if (nameKey(words.split(" ")[0]!) === key || nameKey(words) === key) return true;
  }
  return false;
}
