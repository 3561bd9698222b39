/**
 * Admission, decided before a WebSocket upgrade or an HTTP API request is
 * served: the rate per client address and, when AUTH_SECRET is set, the JWT
 * (checked by `token_check.ts`). It knows no HTTP: it answers an
 * {@linkcode Admission}, and each route turns that into its own response
 * (429 with Retry-After, a close 1008 after the upgrade, a 401). It lives
 * below the routes because routes never import each other.
 *
 * A WebSocket client sends its token as `?token=<jwt>` or, better (URLs end
 * up in logs), as a subprotocol entry `bearer.<jwt>` next to the real
 * protocol: `new WebSocket(url, ["chat", "bearer." + token])`. The server
 * then answers with `chat`, never with the token entry unless it was all
 * the client offered, because a browser fails a handshake whose answer is
 * not one of the offered protocols.
 *
 * @module
 */

import { type Clock, systemClock } from "../clock.ts";
import { type Logger, silentLogger } from "../logger.ts";
import { withDefaults } from "../options.ts";
import { CloseCode, CloseReason } from "../protocol.ts";
import { DEFAULT_KEYED_RATE_LIMITER, KeyedRateLimiter } from "../rate_limit.ts";
import type { TokenCheck } from "./token_check.ts";

/**
 * What the gatekeeper decided about one client: a verified identity, an
 * anonymous client (authentication off), a refusal to close the socket
 * with (the token failed; a browser cannot read the status of a refused
 * handshake, so WebSocket routes refuse after the upgrade), or too many
 * requests from its address.
 */
export type Admission =
  | { kind: "identity"; userId: string; username: string }
  | { kind: "anonymous"; userId?: string }
  | { kind: "refuse"; code: number; reason: string }
  | { kind: "throttled"; retryAfterS: number };

/** What the gatekeeper is told of a client. */
export interface Applicant {
  /** The client's address, as the route determined it; rate-limited per value. */
  remoteAddr: string;
  /** The token the client presented; empty when none. */
  token: string;
  /**
   * A browser's own secret (see {@linkcode handshakeKey}); empty when none.
   * Without authentication it makes the client's user id, so the tabs of
   * one browser may share a name that other browsers cannot take.
   */
  key?: string;
}

/** Decides whether a client may go on; see {@linkcode createGatekeeper}. */
export type Gatekeeper = (applicant: Applicant) => Promise<Admission>;

/** The log events of a gatekeeper's two refusals. */
export interface GatekeeperEvents {
  /** Logged for a client over the rate. */
  throttled: string;
  /** Logged for a refused token, with the failed check (never the token). */
  unauthorized: string;
}

/** Options of {@linkcode createGatekeeper}. */
export interface GatekeeperOptions {
  /**
   * The token check (from `createTokenCheck` with AUTH_SECRET); without one
   * authentication is off and every client within the rate is anonymous.
   */
  tokenCheck?: TokenCheck;
  /** Admissions one address may ask for per minute (burst as large); more are throttled. */
  requestsPerIpPerMin?: number;
  /** Addresses the rate limit tracks at most. */
  maxTrackedAddresses?: number;
  /** Names of the log lines; the API uses its own. Default: the WebSocket handshake's. */
  events?: Readonly<GatekeeperEvents>;
  /** Default: the system clock. */
  clock?: Clock;
  /** Default: silent. */
  logger?: Logger;
}

/** The defaults of {@linkcode GatekeeperOptions}; HANDSHAKES_PER_IP_PER_MIN reads its rate here. */
export const DEFAULT_GATEKEEPER: Readonly<
  Required<Omit<GatekeeperOptions, "tokenCheck">>
> = Object.freeze({
  requestsPerIpPerMin: 120,
  maxTrackedAddresses: DEFAULT_KEYED_RATE_LIMITER.maxKeys,
  events: Object.freeze({ throttled: "handshake_rate_limited", unauthorized: "unauthorized" }),
  clock: systemClock,
  logger: silentLogger,
});

/**
 * Builds a gatekeeper. Each call counts against the client's address, before
 * the token is checked, so guessing tokens is throttled too; past the rate
 * it answers `throttled`. Then, with a token check, a token it refuses
 * (missing, invalid, expired, living past the cap) is a `refuse` with close
 * 1008 "Unauthorized", and a valid one an `identity`.
 *
 * @throws {RangeError} for a rate out of range.
 */
export function createGatekeeper(options: GatekeeperOptions = {}): Gatekeeper {
  const { requestsPerIpPerMin: perMin, maxTrackedAddresses, events, clock, logger } = withDefaults(
    DEFAULT_GATEKEEPER,
    options,
  );
  if (!(Number.isSafeInteger(perMin) && perMin >= 1)) {
    throw new RangeError(`Invalid requests per minute per address: ${perMin}`);
  }
  const limiter = new KeyedRateLimiter({
    ratePerS: perMin / 60,
    burst: perMin,
    maxKeys: maxTrackedAddresses,
    clock,
  });
  const check = options.tokenCheck;

  return async ({ remoteAddr, token, key }) => {
    const waitMs = limiter.take(remoteAddr);
    if (waitMs > 0) {
      logger.info(events.throttled, { remote: remoteAddr });
      return { kind: "throttled", retryAfterS: Math.ceil(waitMs / 1000) };
    }
    if (check === undefined) {
      return key ? { kind: "anonymous", userId: await keyUserId(key) } : { kind: "anonymous" };
    }
    try {
      const { userId, username } = await check(token);
      return { kind: "identity", userId, username };
    } catch (error) {
      // The message names the failed check, never the token.
      logger.info(events.unauthorized, {
        remote: remoteAddr,
        error: error instanceof Error ? error.message : String(error),
      });
      return { kind: "refuse", code: CloseCode.PolicyViolation, reason: CloseReason.Unauthorized };
    }
  };
}

/** The prefix of the subprotocol entry that carries a token. */
export const TOKEN_PROTOCOL_PREFIX = "bearer.";

/** The prefix of the subprotocol entry that carries a browser's key. */
export const KEY_PROTOCOL_PREFIX = "key.";

// 16 random bytes or more in base64url: not guessable, and safe in a header.
const KEY = /^[A-Za-z0-9_-]{22,128}$/;

/**
 * The browser key of a handshake: the first `key.` subprotocol entry's value
 * when it is 22 to 128 base64url characters, else "". A key is a secret the
 * page keeps in localStorage; it never travels in a URL, so it is not logged.
 */
export function handshakeKey(offered: readonly string[]): string {
  const value = offered.find((p) => p.startsWith(KEY_PROTOCOL_PREFIX))
    ?.slice(KEY_PROTOCOL_PREFIX.length);
  return value !== undefined && KEY.test(value) ? value : "";
}

/**
 * The user id of a browser key: a hash, so that the key itself is never
 * stored (presence in KV or Redis holds user ids), in a space of its own
 * (`key:`) apart from tokens' `sub`.
 */
async function keyUserId(key: string): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(key)),
  );
  const base64 = btoa(String.fromCharCode(...digest.subarray(0, 18)));
  return `key:${base64.replaceAll("+", "-").replaceAll("/", "_")}`;
}

/** The entries of a `Sec-WebSocket-Protocol` header, in order; none for a missing header. */
export function offeredProtocols(header: string | null): string[] {
  return (header ?? "").split(",").map((p) => p.trim()).filter((p) => p !== "");
}

/**
 * The subprotocol to answer a handshake with: the first offered one that is
 * not a token entry, else the token entry itself (a browser needs one of its
 * own offers back), or undefined when none was offered.
 */
export function selectProtocol(offered: readonly string[]): string | undefined {
  const secret = (p: string) =>
    p.startsWith(TOKEN_PROTOCOL_PREFIX) || p.startsWith(KEY_PROTOCOL_PREFIX);
  return offered.find((p) => !secret(p)) ?? offered[0];
}

/**
 * The token of a handshake: the `?token=` query value when not empty, else
 * the first `bearer.` subprotocol entry's; "" when neither.
 */
export function handshakeToken(query: string | null, offered: readonly string[]): string {
  if (query !== null && query !== "") return query;
  const entry = offered.find((p) => p.startsWith(TOKEN_PROTOCOL_PREFIX));
  return entry?.slice(TOKEN_PROTOCOL_PREFIX.length) ?? "";
}
