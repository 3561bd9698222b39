/**
 * `/healthz` for load balancers (503 while the engine is degraded) and
 * `/metrics` for Prometheus.
 *
 * @module
 */

import type { ConnectionManager } from "../chat/connection_manager.ts";
import type { EventLoopLag } from "../chat/event_loop_lag.ts";
import { withDefaults } from "../chat/options.ts";
import { bearerToken, json, type Route, route, text, timingSafeEqual } from "./http.ts";

/** Options of {@linkcode createHealthRoutes}. */
export interface HealthRoutesOptions {
  /** The chat layer the routes serve. */
  manager: ConnectionManager;
  /** The probe whose latest lag /metrics shows as `chat_event_loop_lag_seconds`. */
  eventLoopLag: EventLoopLag;
  /** When not empty, /metrics needs `Authorization: Bearer <token>`. */
  metricsToken?: string;
  /** Milliseconds since the epoch when the server started. Default: now. */
  startedAt?: number;
}

/** The defaults of {@linkcode HealthRoutesOptions}; METRICS_TOKEN reads its default here. */
export const DEFAULT_HEALTH_ROUTES: Readonly<{ metricsToken: string }> = Object.freeze({
  // Public: Prometheus scrapes without credentials unless the operator sets one.
  metricsToken: "",
});

/** Routes for `/healthz` and `/metrics`. */
export function createHealthRoutes(options: HealthRoutesOptions): Route[] {
  const { manager, metricsToken } = withDefaults(DEFAULT_HEALTH_ROUTES, options);
  const startedAt = options.startedAt ?? Date.now();
  return [
    route(["GET"], "/healthz", () => {
      const { engine: name, status: engine } = manager.health();
      // 503 while the engine cannot store messages, so load balancers and
      // Docker's HEALTHCHECK stop sending users here; the body says why. With
      // part of the store down (a shard) the other processes are no better.
      return json({
        status: engine,
        engine: { name, status: engine },
        connections: manager.connectionCount,
        rooms: manager.roomCount,
        uptime_s: Math.round((Date.now() - startedAt) / 1000),
      }, { status: engine === "degraded" ? 503 : 200 });
    }),
    route(["GET"], "/metrics", (req) => {
      if (metricsToken !== "" && !timingSafeEqual(bearerToken(req), metricsToken)) {
        return text("Unauthorized", 401, { "www-authenticate": "Bearer" });
      }
      const { rss, heapUsed } = Deno.memoryUsage();
      const body = manager.metrics.render({
        connections: manager.connectionCount,
        rooms: manager.roomCount,
        history: manager.historyStats(),
        process: {
          residentBytes: rss,
          heapUsedBytes: heapUsed,
          eventLoopLagSeconds: options.eventLoopLag.seconds,
        },
      });
      return text(body, 200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" });
    }),
  ];
}
