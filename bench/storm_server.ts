/**
 * Our server for the `storm` scenario on the memory engine: `main.ts`'s
 * app, served the same way, that on SIGUSR1 closes every socket with 1001
 * (as a shutdown does) and keeps serving with its memory intact. A memory
 * engine that really restarted would have lost the history that `since`
 * recovers from; this is the restart its clients see.
 *
 * ```sh
 * PORT=0 deno run -A --unstable-kv bench/storm_server.ts
 * kill -USR1 <pid>
 * ```
 *
 * Logs `{"event":"listening","port":N}` on stderr, like the baseline.
 *
 * @module
 */

import { configFromEnv, createApp, preferVectoredWrites } from "../app.ts";
import { createLogger } from "../chat/logger.ts";
import { CloseCode, CloseReason } from "../chat/protocol.ts";

if (import.meta.main) {
  preferVectoredWrites();
  const config = configFromEnv();
  const app = await createApp(config, { logger: createLogger({ level: config.logLevel }) });
  Deno.serve({
    hostname: config.hostname,
    port: config.port,
    onListen: ({ port }) => console.error(JSON.stringify({ event: "listening", port })),
  }, app.handler);
  Deno.addSignalListener("SIGUSR1", () => {
    app.manager.closeAll(CloseCode.GoingAway, CloseReason.ServerShuttingDown);
  });
  // Exit through Deno.exit so --cpu-prof writes its profile.
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => Deno.exit(0));
  }
}
