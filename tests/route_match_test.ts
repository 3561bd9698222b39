import assert from "node:assert/strict";
import { matchPath, route } from "../routes/http.ts";

const PATTERNS = [
  "/",
  "/ws/chat",
  "/ws/chat/:username",
  "/ws/chat/:username/heartbeat",
  "/api/rooms/:room/messages",
  "/api/admin/users/:username/ban",
  "/static/*",
];

const PATHS = [
  "/",
  "//",
  "/ws",
  "/ws/chat",
  "/ws/chat/",
  "/ws/chat/alice",
  "/ws/chat/alice/",
  "/ws/chat//heartbeat",
  "/ws/chat/alice/heartbeat",
  "/ws/chat/alice/heartbeat/",
  "/ws/chat/alice/bob",
  "/ws/chat/al%20ice",
  "/ws/chat/Jos%C3%A9",
  "/ws/chat/%E4%BD%A0%E5%A5%BD/heartbeat",
  "/WS/chat/alice",
  "/api/rooms/lobby/messages",
  "/api/rooms//messages",
  "/api/rooms/lobby/messages/x",
  "/api/admin/users/bob/ban",
  "/static",
  "/static/",
  "/static/app.js",
  "/static/a/b/c.css",
  "/staticx/app.js",
  "/ws/chat/alice:bob",
  "/ws/chat/a.b-c_d",
];

Deno.test("routes match a pathname exactly as URLPattern does", async (t) => {
  for (const pathname of PATTERNS) {
    await t.step(pathname, () => {
      const r = route(["GET"], pathname, () => new Response());
      const pattern = new URLPattern({ pathname });
      for (const path of PATHS) {
        const expected = pattern.exec({ pathname: path });
        const got = r.exact ? (path === r.prefix ? {} : undefined) : matchPath(r.segments, path);
        assert.equal(got !== undefined, expected !== null, `${pathname} against ${path}`);
        if (expected === null || got === undefined) continue;
        const groups = Object.entries(expected.pathname.groups).filter(([k]) => k !== "0");
        assert.deepEqual(got, Object.fromEntries(groups), `${pathname} against ${path}`);
      }
    });
  }
});

Deno.test("a route pattern with syntax the router does not know is refused", () => {
  for (const pathname of ["/files/:name(\\d+)", "/a/{b}?", "/x/*/y", "/a/:b+"]) {
    assert.throws(() => route(["GET"], pathname, () => new Response()), SyntaxError, pathname);
  }
});
