/**
 * Server configuration from environment variables, validated at start.
 *
 * Each module exports its defaults next to the code that uses them, and
 * {@linkcode DEFAULT_CONFIG} reads them, so a default is written once. This
 * module therefore sits above every module it configures: `main.ts`,
 * `serve.ts` and `app.ts` import it, no module of `chat/` or `routes/` does.
 *
 * @module
 */

import { DEFAULT_HEALTH_ROUTES } from "../routes/health_routes.ts";
import { DEFAULT_TRUST_PROXY, httpOrigin } from "../routes/http.ts";
import { DEFAULT_WS_ROUTES, ROOT_WS_MODES, type RootWs } from "../routes/ws_routes.ts";
import { DEFAULT_GATEKEEPER } from "./auth/gatekeeper.ts";
import { DEFAULT_TOKEN_CHECK } from "./auth/token_check.ts";
import { DEFAULT_CONNECTION_MANAGER } from "./connection_manager.ts";
import { DEFAULT_ENGINE } from "./engines/engine.ts";
import { DEFAULT_REDIS_ENGINE } from "./engines/redis_options.ts";
import { parseRedisUrls, RedisUrlListError } from "./engines/redis_url.ts";
import { DEFAULT_LOGGER, LOG_LEVELS, type LogLevel } from "./logger.ts";

/** Storage and fan-out engines. */
export const ENGINES = ["memory", "kv", "redis"] as const;

/** An engine name. */
export type EngineName = typeof ENGINES[number];

/** The validated configuration; see README for each variable. */
export interface Config {
  /** PORT: the TCP port; 0 picks a free one. */
  port: number;
  /** HOST: the address to listen on. */
  hostname: string;
  /** HEARTBEAT_INTERVAL_MS: how often heartbeat sockets are pinged. */
  heartbeatIntervalMs: number;
  /** HEARTBEAT_TIMEOUT_MS: silence after which a heartbeat socket is closed. */
  heartbeatTimeoutMs: number;
  /** Seconds without a protocol-level pong before Deno closes a socket. */
  idleTimeoutS: number;
  /** MAX_CONNECTIONS: open sockets at most; more are refused. */
  maxConnections: number;
  /** MAX_MESSAGE_BYTES: the largest text frame in UTF-8 bytes. */
  maxMessageBytes: number;
  /** MAX_BUFFERED_BYTES: unsent bytes after which a slow consumer is closed. */
  maxBufferedBytes: number;
  /**
   * Empty: the same scheme, host and port only; otherwise only these
   * origins; `["*"]`: any http(s) origin. `Origin: null` never passes.
   */
  allowedOrigins: string[];
  /** LOG_LEVEL: the least severe level written. */
  logLevel: LogLevel;
  /** CHAT_ENGINE: where messages are stored and fanned out. */
  engine: EngineName;
  /** ROOT_WS: what `/ws` serves, seed 03's echo or the chat (seeds 01 and 02). */
  rootWs: RootWs;
  /** Path of the Deno KV file; empty for the platform default (Deno Deploy). */
  kvPath: string;
  /** HISTORY_LIMIT: messages kept per room. */
  historyLimit: number;
  /** Seconds a stored message lives; 0 keeps it until pushed out by the limit. */
  historyTtlS: number;
  /** HISTORY_MAX_BYTES: bytes of stored history in the whole store; the least recent rooms lose their oldest first. */
  historyMaxBytes: number;
  /** ROOM_TTL_S: seconds after its last message a room is deleted with its history. */
  roomTtlS: number;
  /** ROOMS_PER_IP_PER_MIN: rooms without members one address may enter per minute. */
  roomsPerIpPerMin: number;
  /** REPLAY_MAX_BYTES: history bytes in one welcome, joined or history frame; more follows as the socket drains. */
  replayMaxBytes: number;
  /** ROOM_PRESENCE_LIMIT: members up to which joins and leaves are announced; name lists are paged at it. */
  roomPresenceLimit: number;
  /** PRESENCE_WINDOW_MS: after a join or leave notice, a room's further ones wait this long and go together. */
  presenceWindowMs: number;
  /** HISTORY_ON_JOIN: messages of history sent on joining a room. */
  historyOnJoin: number;
  /** REDIS_URL: the Redis server of the redis engine, or its shards comma-separated, in order. */
  redisUrl: string;
  /** Seconds a process's presence entries in Redis live without a refresh. */
  presenceTtlS: number;
  /** Empty: authentication off. */
  authSecret: string;
  /** RATE_LIMIT_PER_S: frames a connection may send per second. */
  rateLimitPerS: number;
  /** RATE_LIMIT_BURST: frames a connection may send in a burst. */
  rateLimitBurst: number;
  /** MAX_CONNECTIONS_PER_IP: open sockets per client address at most. */
  maxConnectionsPerIp: number;
  /** TRUST_PROXY: whether X-Forwarded-For and X-Forwarded-Proto/Host are believed. */
  trustProxy: boolean;
  /** MAX_ROOMS_PER_CONNECTION: rooms one socket may be in at once. */
  maxRoomsPerConnection: number;
  /** HANDSHAKES_PER_IP_PER_MIN: upgrades, and as many /api requests, per address per minute. */
  handshakesPerIpPerMin: number;
  /** The longest lifetime a token may claim (`exp - iat`, or `exp - now` without `iat`), in seconds. */
  maxTokenLifetimeS: number;
  /** Empty: /metrics is public. */
  metricsToken: string;
  /** Empty: the admin API is off. */
  adminToken: string;
}

/** The defaults of every setting. */
export const DEFAULT_CONFIG: Readonly<Config> = Object.freeze({
  // The server's own: no module below has these.
  port: 8000,
  hostname: "0.0.0.0",
  engine: "kv",
  kvPath: "./data/chat.kv",
  authSecret: "",
  adminToken: "",
  // The modules' own, read where they are written.
  idleTimeoutS: DEFAULT_WS_ROUTES.idleTimeoutS,
  allowedOrigins: [...DEFAULT_WS_ROUTES.allowedOrigins],
  trustProxy: DEFAULT_TRUST_PROXY,
  rootWs: DEFAULT_WS_ROUTES.rootWs,
  logLevel: DEFAULT_LOGGER.level,
  handshakesPerIpPerMin: DEFAULT_GATEKEEPER.requestsPerIpPerMin,
  maxTokenLifetimeS: DEFAULT_TOKEN_CHECK.maxLifetimeS,
  metricsToken: DEFAULT_HEALTH_ROUTES.metricsToken,
  heartbeatIntervalMs: DEFAULT_CONNECTION_MANAGER.heartbeatIntervalMs,
  heartbeatTimeoutMs: DEFAULT_CONNECTION_MANAGER.heartbeatTimeoutMs,
  maxConnections: DEFAULT_CONNECTION_MANAGER.maxConnections,
  maxMessageBytes: DEFAULT_CONNECTION_MANAGER.maxMessageBytes,
  maxBufferedBytes: DEFAULT_CONNECTION_MANAGER.maxBufferedBytes,
  historyLimit: DEFAULT_CONNECTION_MANAGER.historyLimit,
  historyOnJoin: DEFAULT_CONNECTION_MANAGER.historyOnJoin,
  rateLimitPerS: DEFAULT_CONNECTION_MANAGER.rateLimitPerS,
  rateLimitBurst: DEFAULT_CONNECTION_MANAGER.rateLimitBurst,
  maxConnectionsPerIp: DEFAULT_CONNECTION_MANAGER.maxConnectionsPerIp,
  maxRoomsPerConnection: DEFAULT_CONNECTION_MANAGER.maxRoomsPerConnection,
  historyTtlS: DEFAULT_ENGINE.historyTtlS,
  historyMaxBytes: DEFAULT_ENGINE.historyMaxBytes,
  roomTtlS: DEFAULT_ENGINE.roomTtlS,
  roomsPerIpPerMin: DEFAULT_CONNECTION_MANAGER.roomsPerIpPerMin,
  replayMaxBytes: DEFAULT_CONNECTION_MANAGER.replayMaxBytes,
  roomPresenceLimit: DEFAULT_CONNECTION_MANAGER.roomPresenceLimit,
  presenceWindowMs: DEFAULT_CONNECTION_MANAGER.presenceWindowMs,
  presenceTtlS: DEFAULT_ENGINE.presenceTtlS,
  redisUrl: DEFAULT_REDIS_ENGINE.url,
});

/** The environment variables, as `Deno.env.toObject()` returns them. */
export type Env = Record<string, string | undefined>;

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === "") return fallback;
  const value = Number(raw.trim());
  if (!/^-?\d+$/.test(raw.trim()) || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new RangeError(`Invalid ${name} (an integer from ${min} to ${max}): ${raw}`);
  }
  return value;
}

function choice<T extends string>(
  env: Env,
  name: string,
  fallback: T,
  options: readonly T[],
): T {
  const raw = env[name]?.trim().toLowerCase();
  if (raw === undefined || raw === "") return fallback;
  if (!(options as readonly string[]).includes(raw)) {
    throw new RangeError(`Invalid ${name} (one of ${options.join(", ")}): ${env[name]}`);
  }
  return raw as T;
}

function flag(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name]?.trim().toLowerCase();
  if (raw === undefined || raw === "") return fallback;
  if (["1", "true", "yes", "on"].includes(raw)) return true;
  if (["0", "false", "no", "off"].includes(raw)) return false;
  throw new RangeError(`Invalid ${name} (true or false): ${env[name]}`);
}

/** A hostname (letters, digits, dots and hyphens) or an IPv4 or IPv6 address. */
const HOSTNAME =
  /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$|^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*$/;

function host(env: Env): string {
  const raw = env.HOST?.trim() ?? "";
  if (raw === "") return DEFAULT_CONFIG.hostname;
  if (raw.length > 253 || !HOSTNAME.test(raw)) {
    throw new RangeError(`Invalid HOST (a hostname or an IP address): ${env.HOST}`);
  }
  return raw;
}

/** REDIS_URL: one Redis, or the shards as a comma-separated list, each entry trimmed. */
function redisUrl(env: Env): string {
  const raw = env.REDIS_URL?.trim() ?? "";
  if (raw === "") return DEFAULT_CONFIG.redisUrl;
  try {
    return parseRedisUrls(raw).join(",");
  } catch (error) {
    if (!(error instanceof RedisUrlListError)) throw error;
    const hint = error.duplicate
      ? "each Redis once"
      : "redis://[user:pass@]host[:port][/db] or rediss://…, comma-separated for shards";
    throw new RangeError(`Invalid REDIS_URL (${hint}): ${error.entry}`);
  }
}

/**
 * A token or secret, trimmed: a pasted value with a trailing newline still
 * matches. Unset or empty leaves its feature off; set to blanks is a mistake
 * that would turn authentication on with a secret nobody meant.
 */
function secret(env: Env, name: "AUTH_SECRET" | "METRICS_TOKEN" | "ADMIN_TOKEN"): string {
  const raw = env[name];
  if (raw === undefined || raw === "") return "";
  const value = raw.trim();
  if (value === "") {
    // JSON: the blanks stay visible, and a newline among them stays on one line.
    throw new RangeError(
      `Invalid ${name} (empty to turn it off, not blank): ${JSON.stringify(raw)}`,
    );
  }
  return value;
}

/** AUTH_SECRET, METRICS_TOKEN and ADMIN_TOKEN, trimmed; empty turns each feature off. */
function secrets(env: Env): Pick<Config, "authSecret" | "metricsToken" | "adminToken"> {
  return {
    authSecret: secret(env, "AUTH_SECRET"),
    metricsToken: secret(env, "METRICS_TOKEN"),
    adminToken: secret(env, "ADMIN_TOKEN"),
  };
}

function origins(env: Env): string[] {
  const raw = env.ALLOWED_ORIGINS?.trim() ?? "";
  if (raw === "") return [];
  return raw.split(",").map((s) => s.trim()).filter((s) => s !== "").map((entry) => {
    if (entry === "*") return entry;
    const origin = httpOrigin(entry);
    if (origin === undefined) {
      throw new RangeError(
        `Invalid ALLOWED_ORIGINS (comma list of http:// or https:// origins, or *): ${entry}`,
      );
    }
    return origin;
  });
}

/** The settings that bound what clients can make the server store and send. */
function resourceBounds(
  env: Env,
): Pick<
  Config,
  | "historyMaxBytes"
  | "roomTtlS"
  | "roomsPerIpPerMin"
  | "replayMaxBytes"
  | "roomPresenceLimit"
  | "presenceWindowMs"
> {
  const d = DEFAULT_CONFIG;
  return {
    historyMaxBytes: integer(env, "HISTORY_MAX_BYTES", d.historyMaxBytes, 65_536, 2 ** 40),
    roomTtlS: integer(env, "ROOM_TTL_S", d.roomTtlS, 60, 10 * 365 * 86_400),
    roomsPerIpPerMin: integer(env, "ROOMS_PER_IP_PER_MIN", d.roomsPerIpPerMin, 1, 1_000_000),
    replayMaxBytes: integer(env, "REPLAY_MAX_BYTES", d.replayMaxBytes, 4096, 64 * 1024 * 1024),
    roomPresenceLimit: integer(env, "ROOM_PRESENCE_LIMIT", d.roomPresenceLimit, 1, 100_000),
    presenceWindowMs: integer(env, "PRESENCE_WINDOW_MS", d.presenceWindowMs, 0, 60_000),
  };
}

/**
 * Reads and validates the configuration.
 *
 * @throws {RangeError} naming the variable and its value when one is invalid.
 */
export function loadConfig(env: Env): Config {
  const d = DEFAULT_CONFIG;
  const day = 86_400_000;
  const config: Config = {
    port: integer(env, "PORT", d.port, 0, 65535),
    hostname: host(env),
    heartbeatIntervalMs: integer(env, "HEARTBEAT_INTERVAL_MS", d.heartbeatIntervalMs, 10, day),
    heartbeatTimeoutMs: integer(env, "HEARTBEAT_TIMEOUT_MS", d.heartbeatTimeoutMs, 10, day),
    idleTimeoutS: integer(env, "IDLE_TIMEOUT_S", d.idleTimeoutS, 0, 86_400),
    maxConnections: integer(env, "MAX_CONNECTIONS", d.maxConnections, 1, 10_000_000),
    maxMessageBytes: integer(env, "MAX_MESSAGE_BYTES", d.maxMessageBytes, 64, 64 * 1024 * 1024),
    maxBufferedBytes: integer(env, "MAX_BUFFERED_BYTES", d.maxBufferedBytes, 1024, 2 ** 40),
    allowedOrigins: origins(env),
    logLevel: choice(env, "LOG_LEVEL", d.logLevel, LOG_LEVELS),
    engine: choice(env, "CHAT_ENGINE", d.engine, ENGINES),
    rootWs: choice(env, "ROOT_WS", d.rootWs, ROOT_WS_MODES),
    // Deno Deploy has no writable disk: its database is the platform default.
    kvPath: env.KV_PATH ?? (env.DENO_DEPLOYMENT_ID ? "" : d.kvPath),
    historyLimit: integer(env, "HISTORY_LIMIT", d.historyLimit, 0, 1_000_000),
    historyTtlS: integer(env, "HISTORY_TTL_S", d.historyTtlS, 0, 10 * 365 * 86_400),
    historyOnJoin: integer(env, "HISTORY_ON_JOIN", d.historyOnJoin, 0, 1000),
    ...resourceBounds(env),
    ...secrets(env),
    redisUrl: redisUrl(env),
    presenceTtlS: integer(env, "PRESENCE_TTL_S", d.presenceTtlS, 1, 86_400),
    rateLimitPerS: integer(env, "RATE_LIMIT_PER_S", d.rateLimitPerS, 1, 1_000_000),
    rateLimitBurst: integer(env, "RATE_LIMIT_BURST", d.rateLimitBurst, 1, 1_000_000),
    maxConnectionsPerIp: integer(
      env,
      "MAX_CONNECTIONS_PER_IP",
      d.maxConnectionsPerIp,
      1,
      10_000_000,
    ),
    trustProxy: flag(env, "TRUST_PROXY", d.trustProxy),
    maxRoomsPerConnection: integer(
      env,
      "MAX_ROOMS_PER_CONNECTION",
      d.maxRoomsPerConnection,
      1,
      10_000,
    ),
    handshakesPerIpPerMin: integer(
      env,
      "HANDSHAKES_PER_IP_PER_MIN",
      d.handshakesPerIpPerMin,
      1,
      10_000_000,
    ),
    maxTokenLifetimeS: integer(
      env,
      "MAX_TOKEN_LIFETIME_S",
      d.maxTokenLifetimeS,
      1,
      10 * 365 * 86_400,
    ),
  };
  return consistent(config);
}

/**
 * Checks the settings that depend on each other; returns `config` with
 * HISTORY_ON_JOIN capped at HISTORY_LIMIT.
 *
 * @throws {RangeError} for a heartbeat timeout below its interval.
 */
function consistent(config: Config): Config {
  if (config.heartbeatTimeoutMs < config.heartbeatIntervalMs) {
    throw new RangeError(
      `Invalid HEARTBEAT_TIMEOUT_MS (not below HEARTBEAT_INTERVAL_MS ${config.heartbeatIntervalMs}): ${config.heartbeatTimeoutMs}`,
    );
  }
  if (config.historyOnJoin > config.historyLimit && config.historyLimit > 0) {
    config.historyOnJoin = config.historyLimit;
  }
  return config;
}
