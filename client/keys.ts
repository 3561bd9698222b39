/**
 * A browser's or device's key for the `key` option of `ChatClient`.
 *
 * @module
 */

/**
 * A new random key for the `key` option: 16 bytes from the platform's
 * cryptographic generator, in base64url (22 characters).
 *
 * @example
 * ```ts ignore
 * const key = localStorage.getItem("chat.key") ?? newKey();
 * localStorage.setItem("chat.key", key);
 * ```
 */
export function newKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_")
    .replace(/=+$/, "");
}
