/**
 * The chat page and the files of `static/`: Content-Type, ETag, 304,
 * HEAD, Cache-Control and the security headers of a page. Only plain file
 * names inside `static/` are reachable.
 *
 * @module
 */

import { withDefaults } from "../chat/options.ts";
import { type Route, route, text } from "./http.ts";

/** Options of {@linkcode createStaticRoutes}. */
export interface StaticRoutesOptions {
  /** The folder served. Default: `static/` beside `routes/`. */
  root?: URL;
}

/** The defaults of {@linkcode StaticRoutesOptions}. */
export const DEFAULT_STATIC_ROUTES: Readonly<Required<StaticRoutesOptions>> = Object.freeze({
  root: new URL("../static/", import.meta.url),
});

const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  mjs: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  json: "application/json; charset=utf-8",
  svg: "image/svg+xml",
  png: "image/png",
  ico: "image/x-icon",
  txt: "text/plain; charset=utf-8",
  webmanifest: "application/manifest+json",
};

/** Headers on every page and asset: the page may use only its own resources. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  "content-security-policy": [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join("; "),
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
});

interface Asset {
  body: Uint8Array<ArrayBuffer>;
  etag: string;
  type: string;
}

// Plain relative names only: no "..", no empty segments, no encoded bytes.
const SAFE_PATH = /^(?:[A-Za-z0-9_-][A-Za-z0-9_.-]*\/)*[A-Za-z0-9_-][A-Za-z0-9_.-]*$/;

/** Routes for `/`, `/chat` and `/static/*`. */
export function createStaticRoutes(options: StaticRoutesOptions = {}): Route[] {
  const { root } = withDefaults(DEFAULT_STATIC_ROUTES, options);
  // Files that exist only: the cache is as large as static/. A cached miss
  // would let any client grow it without bound with made-up paths, and would
  // hide a file created after its first request.
  const cache = new Map<string, Asset>();

  const load = async (path: string): Promise<Asset | undefined> => {
    const cached = cache.get(path);
    if (cached !== undefined) return cached;
    const asset = await read(root, path);
    if (asset !== undefined) cache.set(path, asset);
    return asset;
  };

  const serve = async (req: Request, path: string): Promise<Response> => {
    if (!SAFE_PATH.test(path) || path.split("/").some((s) => s.startsWith(".."))) {
      return text("Not found", 404);
    }
    const asset = await load(path);
    if (asset === undefined) return text("Not found", 404);
    const headers = new Headers(SECURITY_HEADERS);
    headers.set("content-type", asset.type);
    headers.set("etag", asset.etag);
    // Revalidate every time: names carry no hash, and a 304 is cheap.
    headers.set("cache-control", "no-cache");
    if (req.headers.get("if-none-match")?.split(",").some((t) => t.trim() === asset.etag)) {
      return new Response(null, { status: 304, headers });
    }
    headers.set("content-length", String(asset.body.byteLength));
    return new Response(req.method === "HEAD" ? null : asset.body, { status: 200, headers });
  };

  return [
    route(["GET"], "/", (req) => serve(req, "index.html")),
    route(["GET"], "/chat", (req) => serve(req, "index.html")),
    route(["GET"], "/static/*", (req, ctx) => {
      // The raw pathname: a "%" means an encoded byte, which no file name here has.
      const raw = ctx.url.pathname.slice("/static/".length);
      return serve(req, raw.includes("%") ? "" : raw);
    }),
  ];
}

async function read(root: URL, path: string): Promise<Asset | undefined> {
  let body: Uint8Array<ArrayBuffer>;
  try {
    body = await Deno.readFile(new URL(path, root)) as Uint8Array<ArrayBuffer>;
  } catch {
    return undefined;
  }
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", body));
  const etag = `"${btoa(String.fromCharCode(...digest.subarray(0, 12)))}"`;
  const ext = path.slice(path.lastIndexOf(".") + 1).toLowerCase();
  return { body, etag, type: TYPES[ext] ?? "application/octet-stream" };
}
