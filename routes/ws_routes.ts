/**
 * The WebSocket edge: checks the handshake, upgrades with
 * Deno.upgradeWebSocket and hands the socket to the ConnectionManager.
 *
 * @module
 */

import {
  type Admission,
  type Gatekeeper,
  handshakeKey,
  handshakeToken,
  offeredProtocols,
  selectProtocol,
} from "../chat/auth/gatekeeper.ts";
import type { Connection, ConnectionManager, ConnectOptions } from "../chat/connection_manager.ts";
import { withDefaults } from "../chat/options.ts";
import { parseEpoch } from "../chat/protocol.ts";
import {
  clientAddress,
  DEFAULT_TRUST_PROXY,
  jsonError,
  originAllowed,
  type Route,
  route,
  text,
} from "./http.ts";

/** Options of {@linkcode createWsRoutes}. */
export interface WsRoutesOptions {
  /** The chat layer the routes serve. */
  manager: ConnectionManager;
  /**
   * The handshake rate per address and the token, from `createGatekeeper`;
   * its refusals close the socket after the upgrade.
   */
  gatekeeper: Gatekeeper;
  /** Origins allowed besides the same host; `*` allows any. Default: none. */
  allowedOrigins?: readonly string[];
  /** Seconds without a protocol-level pong before Deno closes the socket. */
  idleTimeoutS?: number;
  /** Whether X-Forwarded-For names the client. */
  trustProxy?: boolean;
  /** What `/ws` serves: seed 03's echo, or the chat of `/ws/chat` (seeds 01 and 02). */
  rootWs?: RootWs;
}

/** What `/ws` serves (ROOT_WS). */
export const ROOT_WS_MODES = ["echo", "chat"] as const;

/** A mode of `/ws`. */
export type RootWs = typeof ROOT_WS_MODES[number];

/** The defaults of {@linkcode WsRoutesOptions}; ALLOWED_ORIGINS, IDLE_TIMEOUT_S and ROOT_WS read theirs here. */
export const DEFAULT_WS_ROUTES: Readonly<{
  allowedOrigins: readonly string[];
  idleTimeoutS: number;
  trustProxy: boolean;
  rootWs: RootWs;
}> = Object.freeze({
  allowedOrigins: Object.freeze([]),
  idleTimeoutS: 60,
  trustProxy: DEFAULT_TRUST_PROXY,
  rootWs: "echo",
});

/** What an admission adds to the connect options: the token's identity, or the refusal. */
function admitted(admission: Admission): Pick<ConnectOptions, "userId" | "username" | "refuse"> {
  switch (admission.kind) {
    case "identity":
      return { userId: admission.userId, username: admission.username };
    case "anonymous":
      return admission.userId === undefined ? {} : { userId: admission.userId };
    case "refuse":
      return { refuse: { code: admission.code, reason: admission.reason } };
    default:
      return {};
  }
}

type Target = Omit<ConnectOptions, "remoteAddr" | "userId">;

const SOCKET_EVENTS = ["open", "message", "close", "error"] as const;

// One object with handleEvent per socket rather than four closures (and the
// wrappers Deno builds for on* handlers): less memory for every idle socket.
// The JS heap per connection of `deno task bench --only=idle` guards it.
/** Forwards a WebSocket's events to its {@linkcode Connection}, opened on "open". */
class SocketEvents {
  #manager: ConnectionManager;
  #socket: WebSocket;
  #connect: ConnectOptions | null;
  #connection: Connection | null = null;

  constructor(manager: ConnectionManager, socket: WebSocket, connect: ConnectOptions) {
    this.#manager = manager;
    this.#socket = socket;
    this.#connect = connect;
  }

  handleEvent(event: Event): void {
    switch (event.type) {
      case "message":
        this.#connection?.receive((event as MessageEvent).data);
        return;
      case "open":
        if (this.#connect === null) return;
        this.#connection = this.#manager.connect(this.#socket, this.#connect);
        this.#connect = null;
        return;
      case "close": {
        // Deno reports 0 when it dropped the peer for a protocol error (say bad UTF-8).
        const code = (event as CloseEvent).code;
        this.#connection?.closed(code === 0 ? 1006 : code);
        return;
      }
      case "error":
        // Followed by "close"; listening keeps it from being reported as unhandled.
        return;
    }
  }
}

// RFC 6455 4.2.1: the key is 16 random bytes in base64.
const WEBSOCKET_KEY = /^[A-Za-z0-9+/]{22}==$/;

/** An untrusted header value for an error text: short, or "none" when absent. */
function shown(value: string | null): string {
  if (value === null || value === "") return "none";
  return value.length > 64 ? `${value.slice(0, 64)}...` : value;
}

/**
 * Why a request with `Upgrade: websocket` cannot be upgraded, or undefined.
 * Checked here because Deno.upgradeWebSocket throws on these, which would
 * otherwise be a 500 for what is the client's mistake.
 */
function handshakeProblem(req: Request): string | undefined {
  const connection = req.headers.get("connection");
  const tokens = (connection ?? "").split(",").map((t) => t.trim().toLowerCase());
  if (!tokens.includes("upgrade")) {
    return `Invalid WebSocket handshake, Connection must include Upgrade: ${shown(connection)}`;
  }
  const key = req.headers.get("sec-websocket-key");
  if (key === null || !WEBSOCKET_KEY.test(key)) {
    return `Invalid WebSocket handshake, Sec-WebSocket-Key must be 16 bytes in base64: ${
      shown(key)
    }`;
  }
  return undefined;
}

/** What the runtime could not upgrade, answered instead of a 500. */
const PROTOCOL_SPELLING =
  'Unsupported Sec-WebSocket-Protocol list; separate its entries with ", " as in "chat, bearer.<token>"';

/**
 * Upgrades with `protocol` as the answered subprotocol, or returns a 400.
 * Deno splits Sec-WebSocket-Protocol on ", " only and throws when the
 * protocol is not one of those pieces, so for a list spelled `chat,bearer.x`
 * (Node's `ws`, `wscat`) the header is set on the 101 response instead.
 */
function acceptSocket(
  req: Request,
  options: { protocol: string | undefined; idleTimeout: number },
): { socket: WebSocket; response: Response } | Response {
  const { protocol, idleTimeout } = options;
  const offered = (req.headers.get("sec-websocket-protocol") ?? "").split(", ");
  const runtimeAnswers = protocol !== undefined && offered.includes(protocol);
  try {
    const upgraded = Deno.upgradeWebSocket(req, {
      idleTimeout,
      ...(runtimeAnswers ? { protocol } : {}),
    });
    if (protocol !== undefined && !runtimeAnswers) {
      upgraded.response.headers.set("sec-websocket-protocol", protocol);
    }
    return upgraded;
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    return text(
      protocol !== undefined && !runtimeAnswers
        ? PROTOCOL_SPELLING
        : `Invalid WebSocket handshake: ${reason}`,
      400,
    );
  }
}

/** The options of the WebSocket routes with every default filled in. */
type WsSettings = WsRoutesOptions & typeof DEFAULT_WS_ROUTES;

/**
 * The recovery point of a handshake, `?since=` (a message id) and `?epoch=`
 * (the stream's, from the client's last `welcome`), or a 400 for either
 * when malformed.
 */
function recoveryPoint(url: URL): Pick<ConnectOptions, "since" | "epoch"> | Response {
  const sinceParam = url.searchParams.get("since");
  let since: number | undefined;
  if (sinceParam !== null && sinceParam !== "") {
    since = Number(sinceParam);
    if (!/^\d+$/.test(sinceParam) || !Number.isSafeInteger(since)) {
      return jsonError(400, `Invalid since: ${sinceParam.slice(0, 32)}`);
    }
  }
  const epochParam = url.searchParams.get("epoch");
  const epoch = epochParam === null || epochParam === "" ? undefined : parseEpoch(epochParam);
  if (epochParam && epoch === undefined) {
    return jsonError(400, `Invalid epoch: ${epochParam.slice(0, 32)}`);
  }
  return { ...(since === undefined ? {} : { since }), ...(epoch === undefined ? {} : { epoch }) };
}

/**
 * Checks a handshake (its headers, Origin, recovery point, then the
 * gatekeeper), upgrades it and hands the socket to the manager for `target`.
 */
async function upgradeWith(
  settings: WsSettings,
  req: Request,
  url: URL,
  info: Deno.ServeHandlerInfo,
  target: Target,
): Promise<Response> {
  const { manager, gatekeeper, allowedOrigins, idleTimeoutS, trustProxy } = settings;
  if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
    return text("Expected a WebSocket upgrade request", 400);
  }
  const problem = handshakeProblem(req);
  if (problem !== undefined) return text(problem, 400);
  if (!originAllowed(req, allowedOrigins, { trustProxy })) {
    manager.metrics.refused(403);
    return text("Origin not allowed", 403);
  }
  const recovery = recoveryPoint(url);
  if (recovery instanceof Response) return recovery;
  const remoteAddr = clientAddress(req, info, trustProxy);
  const offered = offeredProtocols(req.headers.get("sec-websocket-protocol"));
  const token = handshakeToken(url.searchParams.get("token"), offered);
  const admission = await gatekeeper({ remoteAddr, token, key: handshakeKey(offered) });
  if (admission.kind === "throttled") {
    manager.metrics.refused(429);
    return text("Too many handshakes", 429, { "retry-after": String(admission.retryAfterS) });
  }
  // A browser fails the handshake unless one of its offered protocols comes back.
  const protocol = selectProtocol(offered);
  const accepted = acceptSocket(req, { protocol, idleTimeout: idleTimeoutS });
  if (accepted instanceof Response) return accepted;
  const { socket, response } = accepted;
  socket.binaryType = "arraybuffer";
  const connect: ConnectOptions = { ...target, remoteAddr, ...recovery, ...admitted(admission) };
  const events = new SocketEvents(manager, socket, connect);
  for (const type of SOCKET_EVENTS) socket.addEventListener(type, events);
  return response;
}

/** Routes for `/ws`, `/ws/chat`, `/ws/chat/:username`, its `/heartbeat` and `/ws/rooms/:room`. */
export function createWsRoutes(options: WsRoutesOptions): Route[] {
  const settings = withDefaults(DEFAULT_WS_ROUTES, options);
  const upgrade = (req: Request, url: URL, info: Deno.ServeHandlerInfo, target: Target) =>
    upgradeWith(settings, req, url, info, target);
  const room = (url: URL) => url.searchParams.get("room") ?? undefined;
  const flag = (url: URL, name: string) => ["1", "true"].includes(url.searchParams.get(name) ?? "");
  const heartbeat = (url: URL) => flag(url, "heartbeat");
  const batch = (url: URL) => flag(url, "batch");

  const chat = (req: Request, { url, info }: { url: URL; info: Deno.ServeHandlerInfo }) =>
    upgrade(req, url, info, { room: room(url), heartbeat: heartbeat(url), batch: batch(url) });
  return [
    route(
      ["GET"],
      "/ws",
      settings.rootWs === "chat"
        ? chat
        : (req, { url, info }) => upgrade(req, url, info, { mode: "echo" }),
    ),
    route(["GET"], "/ws/chat", chat),
    route(["GET"], "/ws/chat/:username", (req, { url, info, params }) =>
      upgrade(req, url, info, {
        username: params.username,
        room: room(url),
        heartbeat: heartbeat(url),
        batch: batch(url),
      })),
    route(
      ["GET"],
      "/ws/chat/:username/heartbeat",
      (req, { url, info, params }) =>
        upgrade(req, url, info, {
          username: params.username,
          room: room(url),
          heartbeat: true,
          batch: batch(url),
        }),
    ),
    route(
      ["GET"],
      "/ws/rooms/:room",
      (req, { url, info, params }) =>
        upgrade(req, url, info, {
          room: params.room,
          heartbeat: heartbeat(url),
          batch: batch(url),
        }),
    ),
  ];
}
