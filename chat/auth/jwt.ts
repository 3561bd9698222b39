/**
 * JSON Web Tokens signed with HMAC SHA-256 (HS256), for the server's optional
 * authentication. Only HS256 is accepted: the algorithm is fixed here rather
 * than taken from the token, which is what keeps `none` and RS256/HS256
 * confusion out.
 *
 * This module imports nothing from the project.
 *
 * @module
 */

/** The claims the chat server reads from a token; other claims are kept. */
export interface TokenClaims {
  /** The user id. */
  sub: string;
  /** The display name. */
  name: string;
  /** Expiry, seconds since the epoch. */
  exp?: number;
  /** Not valid before, seconds since the epoch. */
  nbf?: number;
  /** Issued at, seconds since the epoch. */
  iat?: number;
  /** Any other claim, kept as it came. */
  [key: string]: unknown;
}

/** Options for {@linkcode JwtVerifier}. */
export interface JwtVerifierOptions {
  /**
   * How far `exp`, `nbf` and `iat` may be off from the local clock, in
   * seconds. Default: {@linkcode DEFAULT_JWT_VERIFIER}.
   */
  clockSkewSeconds?: number;
}

/** The defaults of {@linkcode JwtVerifierOptions}. */
export const DEFAULT_JWT_VERIFIER: Readonly<Required<JwtVerifierOptions>> = Object.freeze({
  clockSkewSeconds: 30,
});

/** Longer tokens are rejected before any decoding work is done. */
export const MAX_TOKEN_LENGTH = 4096;

const HMAC_PARAMS = { name: "HMAC", hash: "SHA-256" } as const;
const encoder = new TextEncoder();
// fatal: invalid UTF-8 must fail rather than decode to U+FFFD and parse.
const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Verifies HS256 tokens against one shared secret. The HMAC key is imported
 * on the first {@linkcode JwtVerifier.verify} call and reused afterwards.
 *
 * @example
 * ```ts
 * const verifier = new JwtVerifier(Deno.env.get("AUTH_SECRET")!);
 * const claims = await verifier.verify(token);
 * ```
 */
export class JwtVerifier {
  #secret: Uint8Array<ArrayBuffer>;
  #clockSkewSeconds: number;
  #key: Promise<CryptoKey> | undefined;

  /** Throws a TypeError for an empty secret, a RangeError for a bad skew. */
  constructor(secret: string, options: JwtVerifierOptions = {}) {
    this.#secret = secretBytes(secret);
    // One option, and this module imports nothing from the project: no withDefaults.
    const skew = options.clockSkewSeconds ?? DEFAULT_JWT_VERIFIER.clockSkewSeconds;
    if (!Number.isFinite(skew) || skew < 0) {
      throw new RangeError(`Invalid clock skew: ${skew}`);
    }
    this.#clockSkewSeconds = skew;
  }

  /**
   * Resolves to the token's claims, or rejects with an Error saying why the
   * token is not acceptable. `now` is in milliseconds since the epoch and
   * defaults to `Date.now()`.
   */
  async verify(token: string, now: number = Date.now()): Promise<TokenClaims> {
    // A NaN `now` would make every time comparison false and accept anything.
    if (!Number.isFinite(now)) throw new RangeError(`Invalid time: ${now}`);
    if (typeof token !== "string") throw new TypeError(`Invalid token: ${show(token)}`);
    if (token.length > MAX_TOKEN_LENGTH) {
      throw new Error(`Token too long: ${token.length} characters`);
    }
    const parts = token.split(".");
    if (parts.length !== 3) {
      throw new Error(`Malformed token: expected 3 parts, got ${parts.length}`);
    }
    const [headerPart, payloadPart, signaturePart] = parts as [string, string, string];

    const header = decodeJsonObject(headerPart, "header");
    if (header.alg !== "HS256") {
      throw new Error(`Unsupported token algorithm: ${show(header.alg)}`);
    }
    if ("typ" in header && header.typ !== "JWT") {
      throw new Error(`Unsupported token type: ${show(header.typ)}`);
    }
    // RFC 7515 requires rejecting critical extensions the verifier does not
    // understand, and this one understands none.
    if ("crit" in header) {
      throw new Error(`Unsupported critical token header: ${show(header.crit)}`);
    }

    const signature = decodeBase64Url(signaturePart, "signature");
    this.#key ??= crypto.subtle.importKey("raw", this.#secret, HMAC_PARAMS, false, ["verify"]);
    const valid = await crypto.subtle.verify(
      "HMAC",
      await this.#key,
      signature,
      encoder.encode(`${headerPart}.${payloadPart}`),
    );
    if (!valid) throw new Error("Token signature is invalid");

    // Only signed payloads are parsed, so forged tokens never reach JSON.parse.
    const claims = decodeJsonObject(payloadPart, "payload");
    checkTimeClaims(claims, now / 1000, this.#clockSkewSeconds);
    if (typeof claims.sub !== "string" || claims.sub === "") {
      throw new Error(`Invalid token claim sub: ${show(claims.sub)}`);
    }
    if (typeof claims.name !== "string") {
      throw new Error(`Invalid token claim name: ${show(claims.name)}`);
    }
    return claims as TokenClaims;
  }
}

/**
 * Signs `claims` as an HS256 token with header `{"alg":"HS256","typ":"JWT"}`.
 * The claims are not checked, so tests can sign invalid ones.
 */
export async function signJwt(claims: TokenClaims, secret: string): Promise<string> {
  const key = await crypto.subtle.importKey("raw", secretBytes(secret), HMAC_PARAMS, false, [
    "sign",
  ]);
  const header = encodeBase64Url(encoder.encode(JSON.stringify({ alg: "HS256", typ: "JWT" })));
  const payload = encodeBase64Url(encoder.encode(JSON.stringify(claims)));
  const signature = await crypto.subtle.sign("HMAC", key, encoder.encode(`${header}.${payload}`));
  return `${header}.${payload}.${encodeBase64Url(new Uint8Array(signature))}`;
}

function secretBytes(secret: string): Uint8Array<ArrayBuffer> {
  // Web Crypto refuses zero-length HMAC keys; fail here with a clearer message.
  if (typeof secret !== "string" || secret === "") {
    throw new TypeError("Invalid secret: must be a non-empty string");
  }
  return encoder.encode(secret);
}

function checkTimeClaims(claims: Record<string, unknown>, nowSeconds: number, skew: number) {
  for (const name of ["exp", "nbf", "iat"]) {
    if (name in claims && !Number.isFinite(claims[name])) {
      throw new Error(`Invalid token claim ${name}: ${show(claims[name])}`);
    }
  }
  const { exp, nbf, iat } = claims as { exp?: number; nbf?: number; iat?: number };
  // RFC 7519: the current time must be before exp, and not before nbf.
  if (exp !== undefined && nowSeconds >= exp + skew) {
    throw new Error(`Token expired: exp ${exp}`);
  }
  if (nbf !== undefined && nowSeconds < nbf - skew) {
    throw new Error(`Token not yet valid: nbf ${nbf}`);
  }
  if (iat !== undefined && nowSeconds < iat - skew) {
    throw new Error(`Token issued in the future: iat ${iat}`);
  }
}

function decodeJsonObject(part: string, what: string): Record<string, unknown> {
  const bytes = decodeBase64Url(part, what);
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(bytes));
  } catch {
    throw new Error(`Malformed token ${what}: invalid JSON`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new Error(`Malformed token ${what}: not a JSON object`);
  }
  return value as Record<string, unknown>;
}

function encodeBase64Url(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

function decodeBase64Url(text: string, what: string): Uint8Array<ArrayBuffer> {
  let bytes: Uint8Array<ArrayBuffer>;
  try {
    const base64 = text.replaceAll("-", "+").replaceAll("_", "/");
    const binary = atob(base64 + "=".repeat((4 - base64.length % 4) % 4));
    bytes = Uint8Array.from(binary, (char) => char.charCodeAt(0));
  } catch {
    throw new Error(`Malformed token ${what}: invalid base64url`);
  }
  // atob tolerates whitespace, padding, `+`, `/` and stray low bits; accepting
  // those would let one signed token have many spellings.
  if (encodeBase64Url(bytes) !== text) {
    throw new Error(`Malformed token ${what}: invalid base64url`);
  }
  return bytes;
}

/** Formats an untrusted value for an error message, short and on one line. */
function show(value: unknown): string {
  const text = typeof value === "string" && /^[\x21-\x7e]+$/.test(value)
    ? value
    : String(JSON.stringify(value));
  return text.length > 64 ? `${text.slice(0, 64)}...` : text;
}
