/**
 * The server's entry point: reads the configuration, wires the app, serves
 * it and shuts down cleanly on SIGINT and SIGTERM.
 *
 * ```sh
 * deno task start
 * ```
 *
 * @module
 */

import { type App, configFromEnv, createApp, preferVectoredWrites } from "./app.ts";
import type { Config } from "./chat/config.ts";
import { LogThrottle } from "./chat/log_throttle.ts";
import { createLogger, type Logger } from "./chat/logger.ts";
import { type ListenStage, serveForever } from "./listener.ts";

export { type App, createApp } from "./app.ts";
export { type Config, DEFAULT_CONFIG, loadConfig } from "./chat/config.ts";

const SHUTDOWN_GRACE_MS = 5000;

/**
 * Counts and logs the listener's failures. Out of descriptors, the accept
 * loop can die ten times a second: the lines are throttled, the counter
 * (`chat_accept_failures_total`) is exact.
 */
function onListenerError(app: App, logger: Logger): (error: unknown, stage: ListenStage) => void {
  const lines = new LogThrottle({ logger });
  return (error, stage) => {
    if (stage === "accept") {
      app.manager.metrics.acceptFailures++;
      lines.warn("accept_failed", { error: String(error) });
    } else {
      lines.warn("listen_failed", { error: String(error) });
    }
  };
}

/**
 * Serves the app until a signal; resolves when the server has stopped. The
 * listener is started again when it stops accepting (out of descriptors),
 * see `listener.ts`.
 */
export async function run(config: Config, logger: Logger): Promise<void> {
  const app: App = await createApp(config, { logger });
  const server = await serveForever({
    port: config.port,
    hostname: config.hostname,
    handler: app.handler,
    onListen: ({ hostname, port }) =>
      logger.info("listening", { hostname, port, engine: app.manager.health().engine }),
    onError: onListenerError(app, logger),
  });

  let stopping = false;
  const stop = async (signal: Deno.Signal) => {
    // A second signal (Ctrl+C twice, or a signal to the whole process group) changes nothing.
    if (stopping) return;
    stopping = true;
    logger.info("shutdown", { signal });
    const stopped = server.shutdown();
    await app[Symbol.asyncDispose]();
    let timer: number | undefined;
    const grace = new Promise<void>((resolve) => {
      timer = Number(setTimeout(resolve, SHUTDOWN_GRACE_MS));
    });
    await Promise.race([stopped, grace]);
    clearTimeout(timer);
    Deno.exit(0);
  };
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    try {
      Deno.addSignalListener(signal, () => void stop(signal));
    } catch {
      // Platforms without signals (Deno Deploy) stop the isolate themselves.
    }
  }
  await server.finished;
}

if (import.meta.main) {
  preferVectoredWrites();
  const config = configFromEnv();
  await run(config, createLogger({ level: config.logLevel }));
}
