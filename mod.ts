/**
 * Deno Chat as a library: build the server's request handler from a
 * configuration and serve it yourself.
 *
 * ```ts
 * import { createApp, loadConfig } from "@chat/deno-chat";
 *
 * const config = loadConfig({ ...Deno.env.toObject(), CHAT_ENGINE: "memory" });
 * await using app = await createApp(config);
 * const server = Deno.serve({ port: config.port }, app.handler);
 * await server.finished;
 * ```
 *
 * The protocol's frame types are in `@chat/deno-chat/protocol`, a client in
 * `@chat/deno-chat/client`.
 *
 * @module
 */

export { type App, type AppOptions, createApp, createEngine, type EngineTime } from "./app.ts";
export {
  type Config,
  DEFAULT_CONFIG,
  type EngineName,
  ENGINES,
  type Env,
  loadConfig,
} from "./chat/config.ts";
export type { Clock, Scheduler, TimerHandle } from "./chat/clock.ts";
export type {
  ChatSocket,
  Connection,
  ConnectionInfo,
  ConnectOptions,
  RawFrame,
} from "./chat/connection.ts";
export type { ConnectionManager, HealthInfo, HistoryOptions } from "./chat/connection_manager.ts";
export type {
  Broker,
  Delivery,
  Engine,
  EngineStats,
  EngineStatus,
  History,
  HistoryPage,
  HistoryQuery,
  Holder,
  Payload,
  Presence,
  Publication,
  PublishOptions,
  StreamPosition,
} from "./chat/engines/engine.ts";
export {
  createLogger,
  LOG_LEVELS,
  type LogFields,
  type Logger,
  type LoggerOptions,
  type LogLevel,
} from "./chat/logger.ts";
export type { Gauges, Metrics, ProcessGauges } from "./chat/metrics.ts";
export type { BanOptions, KickOptions } from "./chat/moderation.ts";
export type { RoomInfo } from "./chat/registry.ts";
export { ROOT_WS_MODES, type RootWs } from "./routes/ws_routes.ts";
export { VERSION } from "./chat/version.ts";
