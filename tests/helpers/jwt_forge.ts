/**
 * Hand-made JWTs for tests: any header and payload signed with HMAC
 * SHA-256, to forge what `signJwt` refuses to make.
 *
 * @module
 */

const encoder = new TextEncoder();

/** Base64url without padding, as JWTs use it. */
export function base64Url(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/** One base64url-encoded JSON part of a token. */
export function jsonPart(value: unknown): string {
  return base64Url(encoder.encode(JSON.stringify(value)));
}

/** The parts of a forged token. */
export interface ForgedParts {
  header: unknown;
  payload: unknown;
}

/** Signs any header and payload with HMAC SHA-256 under `secret`. */
export function forgeJwt(parts: ForgedParts, secret: string): Promise<string> {
  return signJwtInput(`${jsonPart(parts.header)}.${jsonPart(parts.payload)}`, secret);
}

/** Appends an HMAC SHA-256 signature to `header.payload`, whatever the parts hold. */
export async function signJwtInput(input: string, secret: string): Promise<string> {
  const key = await crypto.subtle.importKey(
    "raw",
    encoder.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const signature = await crypto.subtle.sign("HMAC", key, encoder.encode(input));
  return `${input}.${base64Url(new Uint8Array(signature))}`;
}
