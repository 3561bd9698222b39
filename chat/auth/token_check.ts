/**
 * The one token check of the server: what a JWT must be for a WebSocket
 * handshake and for the HTTP API alike, asked by `gatekeeper.ts`.
 *
 * A token passes when {@linkcode JwtVerifier} accepts it (HS256, signature,
 * `exp`, `nbf`, `iat` with clock skew, `sub`, `name`), it has an `exp`, and
 * its lifetime is within the cap: a token that lives for ever can only be
 * revoked by changing AUTH_SECRET.
 *
 * @module
 */

import { type Clock, systemClock } from "../clock.ts";
import { withDefaults } from "../options.ts";
import { DEFAULT_JWT_VERIFIER, JwtVerifier, type TokenClaims } from "./jwt.ts";

/** Who a verified token says the client is. */
export interface Identity {
  /** The token's `sub`. */
  userId: string;
  /** The token's `name`, or the `sub` when that is blank. */
  username: string;
}

/**
 * Resolves to the identity a token names, or rejects with an Error whose
 * message says which check failed (never the token itself).
 */
export type TokenCheck = (token: string) => Promise<Identity>;

/** Options of {@linkcode createTokenCheck}. */
export interface TokenCheckOptions {
  /** The HS256 secret (AUTH_SECRET); must not be empty. */
  secret: string;
  /** Whether a token without `exp` is refused. */
  requireExpiry?: boolean;
  /** Leeway for `exp`, `nbf` and `iat`, in seconds. */
  clockSkewS?: number;
  /**
   * The longest lifetime a token may claim, in seconds: `exp - iat`, or
   * `exp - now` (plus the skew) without `iat`; MAX_TOKEN_LIFETIME_S reads
   * its default here.
   */
  maxLifetimeS?: number;
  /** Default: the system clock. */
  clock?: Clock;
}

/** The defaults of {@linkcode TokenCheckOptions}. */
export const DEFAULT_TOKEN_CHECK: Readonly<{
  requireExpiry: boolean;
  clockSkewS: number;
  maxLifetimeS: number;
  clock: Clock;
}> = Object.freeze({
  requireExpiry: true,
  clockSkewS: DEFAULT_JWT_VERIFIER.clockSkewSeconds,
  maxLifetimeS: 30 * 86_400,
  clock: systemClock,
});

/**
 * Builds the token check.
 *
 * @throws {TypeError} for an empty secret.
 * @throws {RangeError} for a clock skew or lifetime cap out of range.
 */
export function createTokenCheck(options: TokenCheckOptions): TokenCheck {
  const { secret, clock, clockSkewS: skewS, requireExpiry, maxLifetimeS } = withDefaults(
    DEFAULT_TOKEN_CHECK,
    options,
  );
  const verifier = new JwtVerifier(secret, { clockSkewSeconds: skewS });
  if (!(Number.isFinite(maxLifetimeS) && maxLifetimeS > 0)) {
    throw new RangeError(`Invalid token lifetime cap: ${maxLifetimeS}`);
  }

  return async (token) => {
    if (token === "") throw new Error("Missing token");
    const now = clock.now();
    const claims = await verifier.verify(token, now);
    if (claims.exp === undefined) {
      if (requireExpiry) throw new Error("Token has no exp");
    } else {
      checkLifetime({ exp: claims.exp, iat: claims.iat }, {
        nowS: now / 1000,
        skewS,
        maxLifetimeS,
      });
    }
    // An empty display name falls back to the user id rather than failing the name check.
    return { userId: claims.sub, username: claims.name.trim() || claims.sub };
  };
}

function checkLifetime(
  claims: Pick<TokenClaims, "iat"> & { exp: number },
  limits: { nowS: number; skewS: number; maxLifetimeS: number },
): void {
  const { nowS, skewS, maxLifetimeS } = limits;
  // Without iat the issue time is unknown; now is the best bound, and the
  // issuer's clock may be ahead of ours by the skew.
  const lifetime = claims.iat === undefined ? claims.exp - nowS - skewS : claims.exp - claims.iat;
  if (lifetime > maxLifetimeS) {
    throw new Error(`Token lifetime over the ${maxLifetimeS} s cap: ${lifetime} s`);
  }
}
