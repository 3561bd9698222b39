/**
 * The read-only HTTP API under `/api/rooms`: rooms with member counts, a
 * room's stored messages page by page, and a room's users.
 *
 * Every request is counted per client address like a WebSocket handshake
 * (429 with Retry-After past the rate) and, with authentication on, needs
 * the same JWT as the WebSocket routes, as `Authorization: Bearer <jwt>` or
 * `?token=<jwt>`; without a valid one the answer is 401.
 *
 * @module
 */

import type { Gatekeeper } from "../chat/auth/gatekeeper.ts";
import type { ConnectionManager } from "../chat/connection_manager.ts";
import { withDefaults } from "../chat/options.ts";
import { roomName } from "../chat/protocol.ts";
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
} from "./http.ts";

/** Options of {@linkcode createApiRoutes}. */
export interface ApiRoutesOptions {
  /** The chat layer the routes serve. */
  manager: ConnectionManager;
  /**
   * The request rate per address and, with AUTH_SECRET, the token, from
   * `createGatekeeper`; its own, so API requests do not spend handshakes.
   */
  gatekeeper: Gatekeeper;
  /** Whether X-Forwarded-For names the client. */
  trustProxy?: boolean;
}

/** The defaults of {@linkcode ApiRoutesOptions}. */
export const DEFAULT_API_ROUTES: Readonly<{ trustProxy: boolean }> = Object.freeze({
  trustProxy: DEFAULT_TRUST_PROXY,
});

/** Messages per page when `limit` is omitted. */
export const DEFAULT_PAGE_LIMIT = 50;
/** The largest page; a larger `limit` is capped to it. */
export const MAX_PAGE_LIMIT = 200;

/** A positive integer query parameter, undefined when absent, or a 400 response. */
function positive(url: URL, name: string): number | undefined | Response {
  const raw = url.searchParams.get(name);
  if (raw === null || raw === "") return undefined;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(value) || value < 1) {
    return jsonError(400, `Invalid ${name} (a positive integer): ${raw.slice(0, 32)}`);
  }
  return value;
}

function roomParam(param: string | undefined): string | Response {
  const raw = param ?? "";
  const room = roomName(raw);
  if (room === undefined) return jsonError(400, `Invalid room name: ${raw.slice(0, 64)}`);
  return room;
}

/**
 * Wraps the API's handlers in the gatekeeper: 429 with Retry-After past the
 * rate, 401 for a token it refuses.
 */
function guard(options: ApiRoutesOptions): (handler: RouteHandler) => RouteHandler {
  const { gatekeeper, trustProxy } = withDefaults(DEFAULT_API_ROUTES, options);
  return (handler) => async (req: Request, ctx: RouteContext) => {
    const remoteAddr = clientAddress(req, ctx.info, trustProxy);
    const token = bearerToken(req) || (ctx.url.searchParams.get("token") ?? "");
    const admission = await gatekeeper({ remoteAddr, token });
    if (admission.kind === "throttled") {
      return jsonError(429, "Too many requests", {
        "retry-after": String(admission.retryAfterS),
      });
    }
    if (admission.kind === "refuse") {
      return jsonError(401, "Unauthorized", { "www-authenticate": "Bearer" });
    }
    return await handler(req, ctx);
  };
}

/**
 * Routes for `GET /api/rooms`, `GET /api/rooms/:room/messages?before=&limit=`
 * (newest last; `next_before` pages back) and `GET /api/rooms/:room/users`.
 */
export function createApiRoutes(options: ApiRoutesOptions): Route[] {
  const { manager } = options;
  const guarded = guard(options);
  const routes = [
    route(["GET"], "/api/rooms", async () => {
      const rooms = await Promise.all(
        manager.rooms().map(async ({ room }) => {
          const users = await manager.allUsers(room);
          return { room, users, connected_count: users.length };
        }),
      );
      return json({ rooms });
    }),
    route(["GET"], "/api/rooms/:room/messages", async (_req, { url, params }) => {
      const room = roomParam(params.room);
      if (room instanceof Response) return room;
      const before = positive(url, "before");
      if (before instanceof Response) return before;
      const limit = positive(url, "limit");
      if (limit instanceof Response) return limit;
      const count = Math.min(limit ?? DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT);
      let frames;
      try {
        frames = await manager.history(room, { before, limit: count });
      } catch {
        return jsonError(503, "History unavailable; try again");
      }
      // A page holds at most REPLAY_MAX_BYTES, so it may end before `count`: say
      // there is more while ids below the first exist; the last page may be empty.
      const first = frames[0];
      const more = first !== undefined && (first.id ?? 0) > 1;
      return json({ room, messages: frames, next_before: more ? first.id : null });
    }),
    route(["GET"], "/api/rooms/:room/users", async (_req, { params }) => {
      const room = roomParam(params.room);
      if (room instanceof Response) return room;
      const users = await manager.allUsers(room);
      return json({ room, users, connected_count: users.length });
    }),
  ];
  // Every route, so one added later cannot be left open by mistake.
  return routes.map((r) => ({ ...r, handler: guarded(r.handler) }));
}
