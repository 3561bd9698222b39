/**
 * Wires the configuration, the engine, the ConnectionManager and the routes
 * into one request handler. Used by `main.ts` (deno run) and `serve.ts`
 * (deno serve --parallel).
 *
 * @module
 */

import { createGatekeeper } from "./chat/auth/gatekeeper.ts";
import { createTokenCheck, type TokenCheck } from "./chat/auth/token_check.ts";
import type { Clock, Scheduler } from "./chat/clock.ts";
import { type Config, loadConfig } from "./chat/config.ts";
import { ConnectionManager } from "./chat/connection_manager.ts";
import { EventLoopLag } from "./chat/event_loop_lag.ts";
import type { Engine } from "./chat/engines/engine.ts";
import { KvEngine } from "./chat/engines/kv.ts";
import { MemoryEngine } from "./chat/engines/memory.ts";
import { RedisEngine } from "./chat/engines/redis.ts";
import { ShardedRedisEngine } from "./chat/engines/redis_shards.ts";
import { parseRedisUrls } from "./chat/engines/redis_url.ts";
import { type Logger, redactTokens, silentLogger } from "./chat/logger.ts";
import { createAdminRoutes } from "./routes/admin_routes.ts";
import { createApiRoutes } from "./routes/api_routes.ts";
import { createHealthRoutes } from "./routes/health_routes.ts";
import { matchPath, type Route, text } from "./routes/http.ts";
import { createStaticRoutes } from "./routes/static_routes.ts";
import { createWsRoutes } from "./routes/ws_routes.ts";

/** Options of {@linkcode createApp}. */
export interface AppOptions {
  /** Default: silent. */
  logger?: Logger;
  /** Default: the system clock. */
  clock?: Clock;
  /** Default: the global timers. */
  scheduler?: Scheduler;
  /** Default: the engine named by `config.engine`. */
  engine?: Engine;
}

/** A running application: its handler and its manager. */
export interface App extends AsyncDisposable {
  /** The request handler for Deno.serve. */
  handler: Deno.ServeHandler;
  /** The manager of every connection. */
  manager: ConnectionManager;
}

/**
 * Reads the configuration from the environment; on an invalid value prints
 * one line naming the variable and exits with code 1.
 */
export function configFromEnv(): Config {
  try {
    return loadConfig(Deno.env.toObject());
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error));
    Deno.exit(1);
  }
}

/**
 * Turns on Deno's vectored WebSocket writes (`DENO_USE_WRITEV=1`) unless the
 * environment already sets the variable. Without them every socket keeps a
 * write buffer as large as the largest frame it was ever sent (a `welcome`
 * with history), for as long as it stays open, idle or not; with them frames
 * over 1 kB go out with `writev` from their own memory. Call before serving:
 * Deno reads the variable once, at the first connection. The RSS per idle
 * connection of `deno task bench --only=idle` guards it.
 */
export function preferVectoredWrites(): void {
  try {
    if (Deno.env.get("DENO_USE_WRITEV") === undefined) Deno.env.set("DENO_USE_WRITEV", "1");
  } catch {
    // No env permission, or a platform that forbids setting it: Deno's default then.
  }
}

/** The time sources an engine uses for its TTLs, refreshes and retries. */
export interface EngineTime {
  /** Default: the system clock. */
  clock?: Clock;
  /** Default: the global timers. */
  scheduler?: Scheduler;
}

/** Creates the engine named by `config.engine`; `logger` defaults to silent. */
export function createEngine(
  config: Config,
  logger: Logger = silentLogger,
  time: EngineTime = {},
): Engine {
  const { clock, scheduler } = time;
  const bounds = {
    historyLimit: config.historyLimit,
    historyMaxBytes: config.historyMaxBytes,
    roomTtlS: config.roomTtlS,
  };
  switch (config.engine) {
    case "memory":
      return new MemoryEngine({ ...bounds, historyTtlS: config.historyTtlS, clock, scheduler });
    case "kv":
      // An empty KV_PATH opens the platform's database (Deno Deploy).
      return new KvEngine({
        path: config.kvPath,
        ...bounds,
        historyTtlS: config.historyTtlS,
        presenceTtlS: config.presenceTtlS,
        logger,
        clock,
        scheduler,
      });
    case "redis": {
      const redis = {
        ...bounds,
        historyTtlS: config.historyTtlS,
        presenceTtlS: config.presenceTtlS,
        logger,
        clock,
        scheduler,
      };
      // A comma list shards the channels over several Redis servers.
      const urls = parseRedisUrls(config.redisUrl);
      return urls.length === 1
        ? new RedisEngine({ url: urls[0], ...redis })
        : new ShardedRedisEngine({ urls, ...redis });
    }
    default:
      throw new RangeError(`Unsupported CHAT_ENGINE: ${config.engine}`);
  }
}

/** Percent-decodes a path parameter; an undecodable one stays as it is for the route to refuse. */
function decodeParam(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

/** Dispatches a request to the first route whose pattern and method match. */
export function createRouter(routes: readonly Route[]): Deno.ServeHandler {
  return async (req, info) => {
    const url = new URL(req.url);
    let allowed: string[] | undefined;
    const pathname = url.pathname;
    for (const r of routes) {
      if (r.exact ? pathname !== r.prefix : !pathname.startsWith(r.prefix)) continue;
      const match = r.exact ? undefined : matchPath(r.segments, pathname);
      if (!r.exact && match === undefined) continue;
      const method = req.method === "HEAD" && r.methods.includes("GET") ? "GET" : req.method;
      if (!r.methods.includes(method)) {
        (allowed ??= []).push(...r.methods);
        continue;
      }
      const params: Record<string, string | undefined> = {};
      for (const [key, value] of Object.entries(match ?? {})) params[key] = decodeParam(value);
      return await r.handler(req, { url, params, info });
    }
    if (allowed !== undefined) {
      return text("Method not allowed", 405, { allow: [...new Set(allowed)].join(", ") });
    }
    return text("Not found", 404);
  };
}

/** Answers 500 to a request whose handling threw, and logs it with the URL's token redacted. */
function answerFailures(router: Deno.ServeHandler, logger: Logger): Deno.ServeHandler {
  return async (req, info) => {
    try {
      return await router(req, info);
    } catch (error) {
      // The logger redacts too; a URL may carry ?token=, so it is cleaned where it is logged.
      logger.error("request_failed", { url: redactTokens(req.url), error: String(error) });
      return text("Internal server error", 500);
    }
  };
}

/** The token check of AUTH_SECRET for the WebSocket and API routes alike; undefined when off. */
function tokenCheckFor(config: Config, clock?: Clock): TokenCheck | undefined {
  if (config.authSecret === "") return undefined;
  return createTokenCheck({
    secret: config.authSecret,
    maxLifetimeS: config.maxTokenLifetimeS,
    clock,
  });
}

/** The routes of every edge, in the order they are matched. */
function createRoutes(
  config: Config,
  manager: ConnectionManager,
  options: { clock?: Clock; logger: Logger; eventLoopLag: EventLoopLag },
): Route[] {
  const { clock, logger, eventLoopLag } = options;
  // The WebSocket routes and the API check alike, each with its own count per address.
  const admission = {
    tokenCheck: tokenCheckFor(config, clock),
    requestsPerIpPerMin: config.handshakesPerIpPerMin,
    clock,
    logger,
  };
  return [
    ...createStaticRoutes(),
    ...createHealthRoutes({ manager, eventLoopLag, metricsToken: config.metricsToken }),
    ...createApiRoutes({
      manager,
      gatekeeper: createGatekeeper({
        ...admission,
        events: { throttled: "api_rate_limited", unauthorized: "api_unauthorized" },
      }),
      trustProxy: config.trustProxy,
    }),
    ...createAdminRoutes({
      manager,
      token: config.adminToken,
      logger,
      clock,
      maxMessageBytes: config.maxMessageBytes,
      trustProxy: config.trustProxy,
    }),
    ...createWsRoutes({
      manager,
      allowedOrigins: config.allowedOrigins,
      idleTimeoutS: config.idleTimeoutS,
      trustProxy: config.trustProxy,
      rootWs: config.rootWs,
      gatekeeper: createGatekeeper(admission),
    }),
  ];
}

/** Builds the application from a validated configuration. */
export async function createApp(config: Config, options: AppOptions = {}): Promise<App> {
  const logger = options.logger ?? silentLogger;
  const manager = new ConnectionManager({
    engine: options.engine ?? createEngine(config, logger, options),
    clock: options.clock,
    scheduler: options.scheduler,
    logger,
    heartbeatIntervalMs: config.heartbeatIntervalMs,
    heartbeatTimeoutMs: config.heartbeatTimeoutMs,
    maxConnections: config.maxConnections,
    maxMessageBytes: config.maxMessageBytes,
    maxBufferedBytes: config.maxBufferedBytes,
    maxRoomsPerConnection: config.maxRoomsPerConnection,
    historyOnJoin: config.historyOnJoin,
    historyLimit: config.historyLimit,
    rateLimitPerS: config.rateLimitPerS,
    rateLimitBurst: config.rateLimitBurst,
    authenticated: config.authSecret !== "",
    maxConnectionsPerIp: config.maxConnectionsPerIp,
    roomsPerIpPerMin: config.roomsPerIpPerMin,
    replayMaxBytes: config.replayMaxBytes,
    roomPresenceLimit: config.roomPresenceLimit,
    presenceWindowMs: config.presenceWindowMs,
  });
  await manager.ready();
  // Started once the engine is up, so a failed start leaves no timer behind; stopped on dispose.
  const eventLoopLag = new EventLoopLag({ clock: options.clock, scheduler: options.scheduler });
  const routes = createRoutes(config, manager, { clock: options.clock, logger, eventLoopLag });
  eventLoopLag.start();
  return {
    handler: answerFailures(createRouter(routes), logger),
    manager,
    [Symbol.asyncDispose]: () => {
      eventLoopLag.stop();
      return manager[Symbol.asyncDispose]();
    },
  };
}
