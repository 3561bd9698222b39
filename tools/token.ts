/**
 * Mints an HS256 token for the chat server's optional authentication.
 *
 * ```sh
 * AUTH_SECRET=... deno task token <name> [ttl-seconds] [--sub=<id>]
 * ```
 *
 * Prints only the token on stdout, so it can be captured with `$(...)`.
 *
 * @module
 */

import { signJwt } from "../chat/auth/jwt.ts";

/** The token lifetime when none is given, in seconds. */
export const DEFAULT_TTL_SECONDS = 3600;

const USAGE = "Usage: deno task token <name> [ttl-seconds] [--sub=<id>]";

/** Options for {@linkcode mintToken}. */
export interface MintTokenOptions {
  /** The display name, claim `name`. */
  name: string;
  /** The HMAC secret shared with the server. */
  secret: string;
  /**
   * The user id, claim `sub`.
   *
   * @default {name}
   */
  sub?: string;
  /**
   * Seconds from `iat` to `exp`; a positive integer.
   *
   * @default {3600}
   */
  ttlSeconds?: number;
  /**
   * The issue time in milliseconds since the epoch.
   *
   * @default {Date.now()}
   */
  now?: number;
}

/**
 * Signs a token with claims `sub`, `name`, `iat` and `exp = iat + ttlSeconds`.
 * Reads no environment and writes nothing.
 */
export async function mintToken(options: MintTokenOptions): Promise<string> {
  const { name, secret, ttlSeconds = DEFAULT_TTL_SECONDS, now = Date.now() } = options;
  const sub = options.sub ?? name;
  if (typeof name !== "string" || name === "") {
    throw new TypeError(`Invalid name: ${JSON.stringify(name)}`);
  }
  if (typeof sub !== "string" || sub === "") {
    throw new TypeError(`Invalid sub: ${JSON.stringify(sub)}`);
  }
  if (!Number.isSafeInteger(ttlSeconds) || ttlSeconds <= 0) {
    throw new RangeError(`Invalid ttl: ${ttlSeconds}`);
  }
  if (!Number.isFinite(now)) throw new RangeError(`Invalid time: ${now}`);
  const iat = Math.floor(now / 1000);
  return await signJwt({ sub, name, iat, exp: iat + ttlSeconds }, secret);
}

/** The command line of the token tool, parsed by {@linkcode parseTokenArgs}. */
export interface TokenArgs {
  /** The display name. */
  name: string;
  /** The lifetime in seconds. */
  ttlSeconds: number;
  /** The user id from `--sub=<id>`, if given. */
  sub?: string;
}

/**
 * Parses `<name> [ttl-seconds] [--sub=<id>]`; `--` ends the flags. Throws a
 * TypeError or RangeError with a one-line message for anything else.
 */
export function parseTokenArgs(args: readonly string[]): TokenArgs {
  const positional: string[] = [];
  let sub: string | undefined;
  let flagsEnded = false;
  for (const arg of args) {
    // Only `--` flags, so that a mistyped "-5" ttl gets the ttl error.
    if (flagsEnded || !arg.startsWith("--")) {
      positional.push(arg);
    } else if (arg === "--") {
      flagsEnded = true;
    } else if (arg.startsWith("--sub=")) {
      sub = arg.slice("--sub=".length);
      if (sub === "") throw new TypeError(`Invalid sub: ""`);
    } else {
      throw new TypeError(`Unknown option: ${arg}`);
    }
  }
  const [name, ttl, ...rest] = positional;
  if (name === undefined || name === "") throw new TypeError(USAGE);
  if (rest.length > 0) throw new TypeError(`Unexpected argument: ${rest[0]}`);
  let ttlSeconds = DEFAULT_TTL_SECONDS;
  if (ttl !== undefined) {
    // Number() would accept "1e3", " 60", "0x10" and "60.0"; only digits are meant.
    ttlSeconds = /^[0-9]+$/.test(ttl) ? Number(ttl) : NaN;
    if (!Number.isSafeInteger(ttlSeconds) || ttlSeconds <= 0) {
      throw new RangeError(`Invalid ttl, expected a positive integer of seconds: ${ttl}`);
    }
  }
  return sub === undefined ? { name, ttlSeconds } : { name, ttlSeconds, sub };
}

if (import.meta.main) {
  try {
    const args = parseTokenArgs(Deno.args);
    const secret = Deno.env.get("AUTH_SECRET");
    if (!secret) throw new Error("Missing environment variable: AUTH_SECRET");
    console.log(await mintToken({ ...args, secret }));
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error));
    Deno.exit(1);
  }
}
