/**
 * The read-only HTTP API under `/api/rooms` and `/api/conversations`: rooms
 * with member counts, a room's stored messages page by page, a room's
 * users, and one's own private conversation with a person, page by page.
 *
 * Every request is counted per client address like a WebSocket handshake
 * (429 with Retry-After past the rate) and, with authentication on, needs
 * the same JWT as the WebSocket routes, as `Authorization: Bearer <jwt>` or
 * `?token=<jwt>`; without a valid one the answer is 401.
 *
 * @module
 */

import { type Admission, type Gatekeeper, handshakeKey } from "../chat/auth/gatekeeper.ts";
import type { ConnectionManager } from "../chat/connection_manager.ts";
import { withDefaults } from "../chat/options.ts";
import { isUid, roomName } from "../chat/protocol.ts";
import { publicUserId } from "../chat/user_ids.ts";
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

/** `before` and `limit` of a page of messages, or a 400 response. */
function pageQuery(url: URL): { before: number | undefined; limit: number } | Response {
  const before = positive(url, "before");
  if (before instanceof Response) return before;
  const limit = positive(url, "limit");
  if (limit instanceof Response) return limit;
  return { before, limit: Math.min(limit ?? DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT) };
}

/** A page of stored frames as the API answers it; `next_before` pages back. */
function messagesPage<F extends { id?: number }>(head: Record<string, string>, frames: F[]) {
  // A page holds at most REPLAY_MAX_BYTES, so it may end before `limit`: say
  // there is more while ids below the first exist; the last page may be empty.
  const first = frames[0];
  const more = first !== undefined && (first.id ?? 0) > 1;
  return json({ ...head, messages: frames, next_before: more ? first.id : null });
}

/** What the gatekeeper said of each request being handled: a conversation needs its identity. */
const admissions = new WeakMap<Request, Admission>();

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
    // Without authentication a browser proves itself with its key, in a header (never a URL).
    const key = handshakeKey([`key.${req.headers.get("x-chat-key") ?? ""}`]);
    const admission = await gatekeeper({ remoteAddr, token, key });
    admissions.set(req, admission);
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
      const query = pageQuery(url);
      if (query instanceof Response) return query;
      try {
        return messagesPage({ room }, await manager.history(room, query));
      } catch {
        return jsonError(503, "History unavailable; try again");
      }
    }),
    route(["GET"], "/api/conversations/:uid/messages", async (req, { url, params }) => {
      const other = params.uid ?? "";
      if (!isUid(other)) return jsonError(400, `Invalid uid: ${other.slice(0, 64)}`);
      const admission = admissions.get(req);
      const userId = admission?.kind === "identity" || admission?.kind === "anonymous"
        ? admission.userId
        : undefined;
      if (userId === undefined) {
        return jsonError(401, "A conversation needs your token or your browser key (X-Chat-Key)");
      }
      const query = pageQuery(url);
      if (query instanceof Response) return query;
      try {
        const me = publicUserId(userId);
        return messagesPage({ with: other }, await manager.conversation({ me, other }, query));
      } catch {
        return jsonError(503, "History unavailable; try again");
      }
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
