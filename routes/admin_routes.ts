/**
 * The operators' admin API under `/api/admin`: announce, close a room, kick
 * and ban a user, list connections. Off unless a token is configured; every
 * request needs `Authorization: Bearer <token>`.
 *
 * @module
 */

import { concatBytes } from "../chat/bytes.ts";
import { type Clock, systemClock } from "../chat/clock.ts";
import type { ConnectionManager } from "../chat/connection_manager.ts";
import { LogThrottle } from "../chat/log_throttle.ts";
import type { Logger } from "../chat/logger.ts";
import { withDefaults } from "../chat/options.ts";
import { normalizeName, roomName } from "../chat/protocol.ts";
import { KeyedRateLimiter } from "../chat/rate_limit.ts";
import {
  bearerToken,
  clientAddress,
  DEFAULT_TRUST_PROXY,
  json,
  jsonError,
  type Route,
  route,
  type RouteContext,
  type RouteHandler,
  timingSafeEqual,
} from "./http.ts";

/** Options of {@linkcode createAdminRoutes}. */
export interface AdminRoutesOptions {
  /** The chat layer the routes serve. */
  manager: ConnectionManager;
  /** The admin token; empty turns the API off (every admin path is 404). */
  token: string;
  /** Where the audit lines go, one per action. */
  logger: Logger;
  /** Longest announcement in UTF-8 bytes: the manager's MAX_MESSAGE_BYTES. */
  maxMessageBytes: number;
  /** Measures ban expiry; must be the manager's clock. Default: the system clock. */
  clock?: Clock;
  /** Take the client address from `X-Forwarded-For`, as the other routes do. */
  trustProxy?: boolean;
  /**
   * Failed requests (missing or wrong token) an address may make per minute;
   * past them every request from it, even with the right token, gets 429
   * until the budget refills.
   */
  failuresPerMin?: number;
}

/** The defaults of {@linkcode AdminRoutesOptions}. */
export const DEFAULT_ADMIN_ROUTES: Readonly<{
  clock: Clock;
  trustProxy: boolean;
  failuresPerMin: number;
}> = Object.freeze({
  clock: systemClock,
  trustProxy: DEFAULT_TRUST_PROXY,
  failuresPerMin: 10,
});

/** Longest accepted request body in bytes. */
export const MAX_ADMIN_BODY_BYTES = 65_536;
/** Addresses whose failures are remembered at most; the least recently seen go first. */
const MAX_TRACKED_ADDRESSES = 10_000;
/** Longest `reason` in characters. */
export const MAX_REASON_LENGTH = 200;
/** Ban length when `minutes` is omitted. */
export const DEFAULT_BAN_MINUTES = 60;
/** Longest ban: one year. */
export const MAX_BAN_MINUTES = 525_600;

type Body = Record<string, unknown>;

/** Why a request was refused: carried as the `cause` of a RangeError. */
interface Refusal {
  status: number;
  /** The field at fault, or null for the body as a whole. */
  field: string | null;
}

function refusal(status: number, field: string | null, message: string): RangeError {
  const cause: Refusal = { status, field };
  return new RangeError(message, { cause });
}

function refusalOf(error: unknown): Refusal | undefined {
  if (!(error instanceof RangeError)) return undefined;
  const cause = error.cause as Partial<Refusal> | undefined;
  return typeof cause?.status === "number" ? cause as Refusal : undefined;
}

function fieldError(field: string, expected: string, value: unknown): RangeError {
  const shown = JSON.stringify(value) ?? String(value);
  return refusal(400, field, `Invalid ${field} (${expected}): ${shown.slice(0, 64)}`);
}

/**
 * Reads a body stream to its end, counting bytes as they arrive, and cancels
 * it once it passes `max`: a chunked body declares no length, and reading it
 * whole first would buffer whatever a client sends.
 */
async function readCapped(body: ReadableStream<Uint8Array> | null, max: number) {
  if (body === null) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > max) {
      await reader.cancel().catch(() => {});
      throw refusal(413, null, `Body too large (at most ${max} bytes): more than ${max} bytes`);
    }
    chunks.push(value);
  }
  return concatBytes(chunks);
}

async function readBody(req: Request): Promise<Body> {
  const length = Number(req.headers.get("content-length") ?? 0);
  if (length > MAX_ADMIN_BODY_BYTES) {
    throw refusal(413, null, `Body too large (at most ${MAX_ADMIN_BODY_BYTES} bytes): ${length}`);
  }
  const bytes = await readCapped(req.body, MAX_ADMIN_BODY_BYTES);
  // Every field of close, kick and ban is optional, so no body means {}.
  if (bytes.length === 0) return {};
  let data: unknown;
  try {
    data = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw refusal(400, "body", "Invalid body (a JSON object): not JSON");
  }
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    throw fieldError("body", "a JSON object", data);
  }
  return data as Body;
}

function optionalReason(body: Body): string | undefined {
  const value = body.reason;
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string" || value.length > MAX_REASON_LENGTH) {
    throw fieldError("reason", `a string of at most ${MAX_REASON_LENGTH} characters`, value);
  }
  return value.trim() === "" ? undefined : value.trim();
}

function optionalRoom(body: Body): string | undefined {
  const value = body.room;
  if (value === undefined || value === null) return undefined;
  const room = typeof value === "string" ? roomName(value) : undefined;
  if (room === undefined) throw fieldError("room", "a valid room name", value);
  return room;
}

function announcement(body: Body, maxBytes: number): string {
  const value = body.message;
  if (typeof value !== "string" || value.trim() === "") {
    throw fieldError("message", "a non-empty string", value);
  }
  const bytes = new TextEncoder().encode(value).length;
  if (bytes > maxBytes) {
    throw refusal(400, "message", `Invalid message (at most ${maxBytes} bytes): ${bytes}`);
  }
  return value;
}

function banMinutes(body: Body): number {
  const value = body.minutes;
  if (value === undefined || value === null) return DEFAULT_BAN_MINUTES;
  if (
    typeof value !== "number" || !Number.isFinite(value) || value <= 0 ||
    value > MAX_BAN_MINUTES
  ) {
    throw fieldError("minutes", `a positive number up to ${MAX_BAN_MINUTES}`, value);
  }
  return value;
}

/** A name from the path, normalised by `fold` (a username's rules by default), or a 400. */
function pathName(
  raw: string | undefined,
  field: string,
  fold: (name: string) => string | undefined = normalizeName,
): string {
  const decoded = raw ?? "";
  const name = fold(decoded);
  if (name === undefined) throw fieldError(field, "a valid name", decoded);
  return name;
}

async function fingerprintOf(token: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(token));
  return [...new Uint8Array(digest, 0, 4)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

type AdminHandler = (req: Request, ctx: RouteContext) => Promise<AdminResult>;

/** The options of the admin routes with every default filled in. */
type AdminSettings = AdminRoutesOptions & typeof DEFAULT_ADMIN_ROUTES;

/** Checks a request's token; returns the refusal, or undefined to go on. */
type TokenGate = (req: Request, ctx: RouteContext, action: string) => Response | undefined;

/**
 * The token check with a budget of failures per address: a token bucket of
 * `failuresPerMin` refilled over a minute, spent by each missing or wrong
 * token. An address with an empty bucket gets 429 for every request, so a
 * guesser gets `failuresPerMin` tries a minute however fast it asks.
 */
function createTokenGate(settings: AdminSettings): TokenGate {
  const { token, logger, clock, trustProxy, failuresPerMin: perMin } = settings;
  const failures = new KeyedRateLimiter({
    ratePerS: perMin / 60,
    burst: perMin,
    maxKeys: MAX_TRACKED_ADDRESSES,
    clock,
  });
  // A locked-out guesser keeps trying: one line per interval, with a count.
  const lockouts = new LogThrottle({ logger, clock });
  return (req, ctx, action) => {
    const address = clientAddress(req, ctx.info, trustProxy);
    const waitMs = failures.peek(address);
    if (waitMs > 0) {
      const seconds = Math.ceil(waitMs / 1000);
      lockouts.warn("admin_locked_out", { action, remote: address, retry_after_s: seconds });
      return jsonError(429, `Too many failed admin requests: retry after ${seconds} s`, {
        "retry-after": String(seconds),
      });
    }
    if (timingSafeEqual(bearerToken(req), token)) return undefined;
    failures.take(address);
    logger.warn("admin_unauthorized", { action, path: ctx.url.pathname, remote: address });
    return jsonError(401, "Unauthorized", { "www-authenticate": "Bearer" });
  };
}

/** What an action did: the response body and the fields of its log line. */
interface AdminResult {
  status: number;
  body: unknown;
  action: string;
  target: string | null;
  details?: Record<string, unknown>;
}

/** A 404 result naming what was not found. */
function notFound(action: string, target: string, what: string): AdminResult {
  return { status: 404, body: { error: `Unknown ${what}: ${target}` }, action, target };
}

/**
 * Wraps an action's handler: the token gate first, then one `admin` log line
 * with the token's fingerprint for every result, refusals (a RangeError with
 * a status) answered as `{error, field}`.
 */
function audited(
  settings: AdminSettings,
  gate: TokenGate,
): (action: string, handler: AdminHandler) => RouteHandler {
  const { logger } = settings;
  // Logs name the token by a digest prefix: enough to tell tokens apart after a rotation.
  const fingerprint = fingerprintOf(settings.token);
  return (action, handler) => async (req, ctx) => {
    const refused = gate(req, ctx, action);
    if (refused !== undefined) return refused;
    let result: AdminResult;
    try {
      result = await handler(req, ctx);
    } catch (error) {
      const refused = refusalOf(error);
      if (refused === undefined) throw error;
      const message = (error as RangeError).message;
      logger.info("admin", {
        action,
        status: refused.status,
        error: message,
        token_fingerprint: await fingerprint,
      });
      return json({ error: message, field: refused.field }, { status: refused.status });
    }
    logger.info("admin", {
      action: result.action,
      target: result.target,
      status: result.status,
      ...result.details,
      token_fingerprint: await fingerprint,
    });
    return json(result.body, { status: result.status });
  };
}

/** `POST /api/admin/announce`: a system message to one room or to every room. */
function announce({ manager, maxMessageBytes }: AdminSettings): AdminHandler {
  return async (req) => {
    const body = await readBody(req);
    const message = announcement(body, maxMessageBytes);
    const room = optionalRoom(body);
    const known = manager.rooms().map((r) => r.room);
    if (room !== undefined && !known.includes(room)) return notFound("announce", room, "room");
    const rooms = room === undefined ? known : [room];
    const frames = await Promise.all(rooms.map((r) => manager.announce(r, "announce", message)));
    return {
      status: 200,
      body: { rooms, ids: frames.map((f) => f.id) },
      action: "announce",
      target: room ?? "*",
      details: { rooms: rooms.length },
    };
  };
}

/**
 * The result of an action that closed `count` connections of a room or a
 * user: the body names the target (`room` or `username`); 404 when none.
 */
function closed(done: {
  action: string;
  what: "room" | "user";
  target: string;
  count: number;
  reason: string | undefined;
}): AdminResult {
  const { action, what, target, count, reason } = done;
  if (count === 0) return notFound(action, target, what);
  return {
    status: 200,
    body: { [what === "room" ? "room" : "username"]: target, connections: count },
    action,
    target,
    details: { connections: count, reason },
  };
}

/** `POST /api/admin/rooms/:room/close`: closes every connection in a room. */
function closeRoom({ manager }: AdminSettings): AdminHandler {
  return async (req, { params }) => {
    const room = pathName(params.room, "room", roomName);
    const reason = optionalReason(await readBody(req));
    const count = await manager.closeRoom(room, reason ?? "This room was closed by an operator");
    return closed({ action: "close_room", what: "room", target: room, count, reason });
  };
}

/** `POST /api/admin/users/:username/kick`: closes a user's connections. */
function kick({ manager }: AdminSettings): AdminHandler {
  return async (req, { params }) => {
    const asked = pathName(params.username, "username");
    // The answer names the user as they spell it, not as the path did.
    const username = manager.onlineName(asked) ?? asked;
    const reason = optionalReason(await readBody(req));
    const count = await manager.kick(username, { reason });
    return closed({ action: "kick", what: "user", target: username, count, reason });
  };
}

/** `POST /api/admin/users/:username/ban`: bans an online user's name for a while and kicks it. */
function ban({ manager, clock }: AdminSettings): AdminHandler {
  return async (req, { params }) => {
    const asked = pathName(params.username, "username");
    const body = await readBody(req);
    const reason = optionalReason(body);
    const minutes = banMinutes(body);
    const username = manager.onlineName(asked);
    if (username === undefined) return notFound("ban", asked, "user");
    const untilMs = clock.now() + Math.round(minutes * 60_000);
    manager.ban(username, { untilMs, reason });
    const count = await manager.kick(username, { reason, banned: true });
    const until = new Date(untilMs).toISOString();
    return {
      status: 200,
      body: { username, connections: count, until },
      action: "ban",
      target: username,
      details: { connections: count, until, reason },
    };
  };
}

/** `GET /api/admin/connections`: every open connection, as an operator sees it. */
function connections({ manager }: AdminSettings): AdminHandler {
  return () => {
    const connections = manager.connections().map((c) => ({
      id: c.id,
      username: c.username,
      user_id: c.userId,
      rooms: c.rooms,
      remote_addr: c.remoteAddr,
      connected_since: c.connectedSince,
      frames_in: c.framesIn,
      frames_out: c.framesOut,
    }));
    return Promise.resolve({
      status: 200,
      body: { count: connections.length, connections },
      action: "connections",
      target: null,
      details: { count: connections.length },
    });
  };
}

/**
 * Routes for `/api/admin/*`. Returns no routes when `token` is empty, so
 * every admin path is 404.
 */
export function createAdminRoutes(options: AdminRoutesOptions): Route[] {
  const settings = withDefaults(DEFAULT_ADMIN_ROUTES, options);
  if (settings.token === "") return [];
  const admin = audited(settings, createTokenGate(settings));
  return [
    route(["POST"], "/api/admin/announce", admin("announce", announce(settings))),
    route(["POST"], "/api/admin/rooms/:room/close", admin("close_room", closeRoom(settings))),
    route(["POST"], "/api/admin/users/:username/kick", admin("kick", kick(settings))),
    route(["POST"], "/api/admin/users/:username/ban", admin("ban", ban(settings))),
    route(["GET"], "/api/admin/connections", admin("connections", connections(settings))),
  ];
}
