/**
 * The read-only HTTP API under `/api/rooms`: rooms with member counts, a
 * room's stored messages page by page, and a room's users.
 *
 * @module
 */

import type { ConnectionManager } from "../chat/connection_manager.ts";
import { normalizeName } from "../chat/protocol.ts";
import { json, jsonError, type Route, route } from "./http.ts";

/** Options of {@linkcode createApiRoutes}. */
export interface ApiRoutesOptions {
  manager: ConnectionManager;
}

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
  const room = normalizeName(raw);
  if (room === undefined) return jsonError(400, `Invalid room name: ${raw.slice(0, 64)}`);
  return room;
}

/**
 * Routes for `GET /api/rooms`, `GET /api/rooms/:room/messages?before=&limit=`
 * (newest last; `next_before` pages back) and `GET /api/rooms/:room/users`.
 */
export function createApiRoutes(options: ApiRoutesOptions): Route[] {
  const { manager } = options;
  return [
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
        ({ frames } = await manager.engine.history(room, { before, limit: count }));
      } catch {
        return jsonError(503, "History unavailable; try again");
      }
      const first = frames[0];
      const more = frames.length === count && first !== undefined && first.id > 1;
      return json({ room, messages: frames, next_before: more ? first.id : null });
    }),
    route(["GET"], "/api/rooms/:room/users", async (_req, { params }) => {
      const room = roomParam(params.room);
      if (room instanceof Response) return room;
      const users = await manager.allUsers(room);
      return json({ room, users, connected_count: users.length });
    }),
  ];
}
