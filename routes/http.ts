/**
 * What every route module shares: the route shape, JSON and error responses,
 * the origin check and the client address. Not a route itself.
 *
 * @module
 */

/** What a handler receives beside the request. */
export interface RouteContext {
  /** The parsed request URL. */
  url: URL;
  /** Named groups of the matched pattern, percent-decoded (left as they are when undecodable). */
  params: Record<string, string | undefined>;
  /** The connection info from Deno.serve. */
  info: Deno.ServeHandlerInfo;
}

/** A request handler. */
export type RouteHandler = (req: Request, ctx: RouteContext) => Response | Promise<Response>;

/**
 * One segment of a route's pathname: a literal, a `:name` parameter (one
 * non-empty segment) or `*` (the rest of the path, slashes and all).
 */
export type PathSegment =
  | { kind: "literal"; text: string }
  | { kind: "param"; name: string }
  | { kind: "rest" };

/** One route: a pattern, its methods and its handler. */
export interface Route {
  /** The pathname pattern as written, such as `/ws/chat/:username`. */
  pathname: string;
  /** The pattern's segments, matched by {@linkcode matchPath}. */
  segments: readonly PathSegment[];
  /**
   * The pattern's literal start (up to its first parameter or wildcard): a
   * pathname without it cannot match, and a `startsWith` is cheaper than
   * matching every segment of every route before the request's own.
   */
  prefix: string;
  /** Whether the pattern is all literal: then it matches its prefix exactly, with no parameters. */
  exact: boolean;
  /** Allowed methods; HEAD is allowed wherever GET is. */
  methods: readonly string[];
  /** Answers a matched request. */
  handler: RouteHandler;
}

/**
 * Builds a route from a pathname pattern of literal segments, `:name`
 * parameters and a final `*`: the routes' only syntax, matched as
 * URLPattern would match it (a URLPattern match cost a connection more than
 * its name checks did).
 */
export function route(methods: readonly string[], pathname: string, handler: RouteHandler): Route {
  const segments = pathname.split("/").map((part, i, all): PathSegment => {
    if (part === "*" && i === all.length - 1) return { kind: "rest" };
    if (/^:[A-Za-z_]\w*$/.test(part)) return { kind: "param", name: part.slice(1) };
    if (/[:*(){}\\?+]/.test(part)) throw new SyntaxError(`Unsupported route pattern: ${pathname}`);
    return { kind: "literal", text: part };
  });
  const prefix = pathname.split(/[:*]/, 1)[0]!;
  return { pathname, segments, prefix, exact: prefix === pathname, methods, handler };
}

/** A pathname's parameters (still percent-encoded) when it matches the segments, else undefined. */
export function matchPath(
  segments: readonly PathSegment[],
  pathname: string,
): Record<string, string> | undefined {
  const params: Record<string, string> = {};
  let at = 0;
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i]!;
    if (segment.kind === "rest") return params;
    const end = pathname.indexOf("/", at);
    const last = i === segments.length - 1;
    // Every segment but the last ends at a slash; the last runs to the end of the path.
    if (last ? end !== -1 : end === -1) return undefined;
    const part = pathname.slice(at, last ? undefined : end);
    if (segment.kind === "literal" ? part !== segment.text : part === "") return undefined;
    if (segment.kind === "param") params[segment.name] = part;
    at = end + 1;
  }
  return params;
}

/** A JSON response. */
export function json(body: unknown, init: ResponseInit = {}): Response {
  const headers = new Headers(init.headers);
  headers.set("content-type", "application/json; charset=utf-8");
  headers.set("cache-control", "no-store");
  return new Response(JSON.stringify(body), { ...init, headers });
}

/** A JSON error `{error: message}` with a status. */
export function jsonError(status: number, message: string, headers?: HeadersInit): Response {
  return json({ error: message }, { status, headers });
}

/** A plain-text response. */
export function text(body: string, status: number, headers?: HeadersInit): Response {
  const h = new Headers(headers);
  if (!h.has("content-type")) h.set("content-type", "text/plain; charset=utf-8");
  return new Response(body, { status, headers: h });
}

/**
 * Whether routes believe the `X-Forwarded-*` headers unless told otherwise
 * (TRUST_PROXY): no, since any client can send them.
 */
export const DEFAULT_TRUST_PROXY = false;

/** Options of {@linkcode originAllowed}. */
export interface OriginOptions {
  /**
   * Take the scheme and host from `X-Forwarded-Proto` and `X-Forwarded-Host`
   * (first values) when present: a proxy that ends TLS passes on `http`.
   * Only behind a proxy that overwrites them. Default: {@linkcode DEFAULT_TRUST_PROXY}.
   */
  trustProxy?: boolean;
}

/**
 * Whether a WebSocket handshake's Origin may connect. No Origin (not a
 * browser) passes. With `allowed` empty, only the server's own origin does:
 * scheme, host and port of the request as the server sees it. Otherwise only
 * the listed origins do (`*`: any http or https origin), so a DNS-rebinding
 * page whose `Host` matches its `Origin` is refused. `Origin: null`
 * (sandboxed frames, file:// pages) and anything not http(s) never pass.
 */
export function originAllowed(
  req: Request,
  allowed: readonly string[],
  options: OriginOptions = {},
): boolean {
  const header = req.headers.get("origin");
  if (header === null) return true;
  const origin = httpOrigin(header);
  if (origin === undefined) return false;
  if (allowed.length > 0) return allowed.includes("*") || allowed.includes(origin);
  return origin === ownOrigin(req, options.trustProxy ?? DEFAULT_TRUST_PROXY);
}

/**
 * The serialised origin of an http(s) URL, or undefined for anything else:
 * `localhost:3000` parses with the scheme `localhost:` and the origin
 * "null", which would let in sandboxed frames and file:// pages.
 */
export function httpOrigin(value: string): string | undefined {
  if (!URL.canParse(value)) return undefined;
  const url = new URL(value);
  if (url.protocol !== "http:" && url.protocol !== "https:") return undefined;
  return url.origin;
}

/** The origin the client reached: the request URL, or what a trusted proxy forwards. */
function ownOrigin(req: Request, trustProxy: boolean): string | undefined {
  const url = new URL(req.url);
  let scheme = url.protocol.slice(0, -1);
  let host = url.host;
  if (trustProxy) {
    const first = (name: string) => req.headers.get(name)?.split(",")[0]?.trim() || undefined;
    const proto = first("x-forwarded-proto")?.toLowerCase();
    if (proto === "http" || proto === "https") scheme = proto;
    host = first("x-forwarded-host") ?? host;
  }
  return httpOrigin(`${scheme}://${host}`);
}

/** The client's address: the first X-Forwarded-For hop only behind a trusted proxy. */
export function clientAddress(
  req: Request,
  info: Deno.ServeHandlerInfo,
  trustProxy: boolean,
): string {
  if (trustProxy) {
    const forwarded = req.headers.get("x-forwarded-for")?.split(",")[0]?.trim();
    if (forwarded) return forwarded;
  }
  const addr = info.remoteAddr as Deno.NetAddr;
  return addr.hostname ?? "unknown";
}

/** Compares two strings in time independent of where they differ. */
export function timingSafeEqual(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < x.length; i++) diff |= x[i]! ^ (y[i % Math.max(1, y.length)] ?? 0);
  return diff === 0;
}

/** The bearer token of a request, or an empty string. */
export function bearerToken(req: Request): string {
  const header = req.headers.get("authorization") ?? "";
  return header.toLowerCase().startsWith("bearer ") ? header.slice(7).trim() : "";
}
