/**
 * The admission check of the WebSocket routes, run before the upgrade: the
 * handshake rate per client address and, when AUTH_SECRET is set, the JWT
 * (checked by `chat/auth/token_check.ts`, which the HTTP API uses too).
 * Not a route itself; `ws_routes.ts` calls the {@linkcode Gatekeeper} built
 * here.
 *
 * A token travels as `?token=<jwt>` or, better (URLs end up in logs), as a
 * WebSocket subprotocol entry `bearer.<jwt>` next to the real protocol:
 * `new WebSocket(url, ["chat", "bearer." + token])`. The server then answers
 * with `chat`, never with the token entry unless it was all the client
 * offered, because a browser fails a handshake whose answer is not one of
 * the offered protocols.
 *
 * @module
 */

import type { Identity, TokenCheck } from "../chat/auth/token_check.ts";
import { type Clock, systemClock } from "../chat/clock.ts";
import { type Logger, silentLogger } from "../chat/logger.ts";
import { CloseCode, CloseReason } from "../chat/protocol.ts";
import { DEFAULT_KEYED_RATE_LIMITER, KeyedRateLimiter } from "../chat/rate_limit.ts";
import { text } from "./http.ts";

/** Who a verified token says the client is (defined with the token check). */
export type { Identity } from "../chat/auth/token_check.ts";

/**
 * A refusal sent after the upgrade as a close frame, because a browser
 * cannot read the HTTP status of a refused handshake.
 */
export interface Refusal {
  refuse: { code: number; reason: string };
}

/**
 * Decides who may connect before the upgrade. Returns an identity, `null`
 * for an anonymous client (auth off), a Refusal to close with after the
 * upgrade, or a Response to refuse the handshake with.
 */
export type Gatekeeper = (
  req: Request,
  ctx: { url: URL; remoteAddr: string },
) =>
  | Promise<Identity | Refusal | null | Response>
  | Identity
  | Refusal
  | null
  | Response;

/** The prefix of the subprotocol entry that carries a token. */
export const TOKEN_PROTOCOL_PREFIX = "bearer.";

/** Options of {@linkcode createGatekeeper}. */
export interface GatekeeperOptions {
  /**
   * The token check (from `createTokenCheck` with AUTH_SECRET); without one
   * authentication is off. Default: none.
   */
  tokenCheck?: TokenCheck;
  /** Handshakes one address may start per minute (burst as large); more get 429. Default 120. */
  handshakesPerIpPerMin?: number;
  /** Addresses the handshake limit tracks at most. Default 100000. */
  maxTrackedAddresses?: number;
  /** Default: the system clock. */
  clock?: Clock;
  /** Default: silent. */
  logger?: Logger;
}

/** The offered subprotocols of a handshake, in order. */
function offeredProtocols(req: Request): string[] {
  const header = req.headers.get("sec-websocket-protocol") ?? "";
  return header.split(",").map((p) => p.trim()).filter((p) => p !== "");
}

/**
 * The subprotocol to answer a handshake with: the first offered one that is
 * not a token entry, else the token entry itself (a browser needs one of its
 * own offers back), or undefined when none was offered.
 */
export function selectProtocol(req: Request): string | undefined {
  const offered = offeredProtocols(req);
  return offered.find((p) => !p.startsWith(TOKEN_PROTOCOL_PREFIX)) ?? offered[0];
}

/** The token of a handshake from `?token=` or a `bearer.` subprotocol entry; "" when none. */
export function handshakeToken(req: Request, url: URL): string {
  const query = url.searchParams.get("token");
  if (query !== null && query !== "") return query;
  const entry = offeredProtocols(req).find((p) => p.startsWith(TOKEN_PROTOCOL_PREFIX));
  return entry?.slice(TOKEN_PROTOCOL_PREFIX.length) ?? "";
}

const UNAUTHORIZED: Refusal = {
  refuse: { code: CloseCode.PolicyViolation, reason: CloseReason.Unauthorized },
};

/**
 * Builds the gatekeeper of the WebSocket routes. Over the handshake rate it
 * answers 429 with Retry-After; with a token check, a token it refuses
 * (missing, invalid, expired, living past the cap) is refused after the
 * upgrade with close 1008 "Unauthorized", since a browser cannot read the
 * status of a refused handshake.
 *
 * @throws {RangeError} for a handshake rate out of range.
 */
export function createGatekeeper(options: GatekeeperOptions = {}): Gatekeeper {
  const clock = options.clock ?? systemClock;
  const log = options.logger ?? silentLogger;
  const perMin = options.handshakesPerIpPerMin ?? 120;
  if (!(Number.isSafeInteger(perMin) && perMin >= 1)) {
    throw new RangeError(`Invalid handshakes per minute: ${perMin}`);
  }
  const handshakes = new KeyedRateLimiter({
    ratePerS: perMin / 60,
    burst: perMin,
    maxKeys: options.maxTrackedAddresses ?? DEFAULT_KEYED_RATE_LIMITER.maxKeys,
    clock,
  });
  const check = options.tokenCheck;

  return async (req, { url, remoteAddr }): Promise<Identity | Refusal | Response | null> => {
    // Counted before the token check, so guessing tokens is throttled too.
    const waitMs = handshakes.take(remoteAddr);
    if (waitMs > 0) {
      log.info("handshake_rate_limited", { remote: remoteAddr });
      return text("Too many handshakes", 429, {
        "retry-after": String(Math.ceil(waitMs / 1000)),
      });
    }
    if (check === undefined) return null;
    try {
      return await check(handshakeToken(req, url));
    } catch (error) {
      // The message names the failed check, never the token.
      log.info("unauthorized", {
        remote: remoteAddr,
        error: error instanceof Error ? error.message : String(error),
      });
      return UNAUTHORIZED;
    }
  };
}
