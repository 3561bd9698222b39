/**
 * The entry for `deno serve`: each worker of `deno serve --parallel` builds
 * its own app from the environment, and they share the kv engine's database.
 *
 * ```sh
 * CHAT_ENGINE=kv deno serve --parallel --port 8000 -A --unstable-kv serve.ts
 * ```
 *
 * `deno serve` stops listening on SIGINT and SIGTERM by itself; the process
 * exits only once every resource is closed, so the app (its sockets, the
 * engine's watches and database) is disposed on those signals too.
 *
 * `deno serve` owns the listener, so `listener.ts` cannot restart it: out of
 * descriptors (EMFILE) the process exits 1 and its supervisor must restart it
 * (docs/security.md, "File descriptors and slow requests").
 *
 * @module
 */

import { configFromEnv, createApp, preferVectoredWrites } from "./app.ts";
import { createLogger } from "./chat/logger.ts";

preferVectoredWrites();
const config = configFromEnv();
const logger = createLogger({ level: config.logLevel });
const app = await createApp(config, { logger });

const SIGNALS = ["SIGINT", "SIGTERM"] as const;
let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  try {
    await app[Symbol.asyncDispose]();
    logger.info("worker_stopped", { engine: app.manager.health().engine });
  } catch (error) {
    logger.error("shutdown_failed", { error: String(error) });
  }
  // A signal listener left behind would keep the worker alive.
  for (const signal of SIGNALS) Deno.removeSignalListener(signal, onSignal);
}
const onSignal = () => void stop();
for (const signal of SIGNALS) Deno.addSignalListener(signal, onSignal);

/** What `deno serve` runs. */
export const server: Deno.ServeDefaultExport = {
  fetch: app.handler,
  onListen: (addr) => logger.info("listening", { ...addr, engine: app.manager.health().engine }),
};

// `deno serve` requires a default export; the project otherwise uses named ones.
export default server;
