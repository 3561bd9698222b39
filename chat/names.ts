/**
 * The one place that decides what a username or room name may be and when
 * two names are the same. It imports nothing, so every layer (protocol,
 * manager, ban list, engines, routes) can use it.
 *
 * @module
 */

const MAX_NAME_LENGTH = 32;
// Letters of any script, digits, space, underscore, hyphen and dot.
const NAME_PATTERN = /^[\p{L}\p{M}\p{N} _.\-]+$/u;
/** The sender name of server notices; no user may take it. */
const RESERVED = "system";

/**
 * Returns the trimmed name when it is a valid username or room name
 * (1 to 32 characters: letters of any script, digits, space, `_ - .`),
 * otherwise `undefined`.
 */
export function normalizeName(raw: string): string | undefined {
  const name = raw.normalize("NFC").trim();
  if (name.length === 0 || [...name].length > MAX_NAME_LENGTH) return undefined;
  return NAME_PATTERN.test(name) ? name : undefined;
}

/**
 * The key two names are compared by: names with the same key are the same
 * name (for uniqueness, bans, private messages and presence).
 */
export function nameKey(name: string): string {
  return name.toLowerCase();
}

/** Whether a name is reserved for the server ("System", any case). */
export function isReservedName(name: string): boolean {
  return nameKey(name) === RESERVED;
}
