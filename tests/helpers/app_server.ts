/**
 * The app served in this process on 127.0.0.1, for tests that talk to it
 * over the network and read its manager and metrics. The clients are
 * `TestClient` (`ws_client.ts`) and `RawClient` (`raw_http.ts`); the server
 * as a child process is `server_process.ts`.
 *
 * ```ts
 * await using server = await startServer({ AUTH_SECRET: "s" });
 * await using alice = await TestClient.connect(server.url("/ws/chat/Alice"));
 * await alice.next("welcome");
 * ```
 *
 * @module
 */

import { type App, type AppOptions, createApp } from "../../app.ts";
import { loadConfig } from "../../chat/config.ts";

/** A running app served on 127.0.0.1. */
export interface TestServer extends AsyncDisposable {
  /** The application, for its manager and metrics. */
  readonly app: App;
  /** The port on 127.0.0.1. */
  readonly port: number;
  /** A `ws://` URL for a path. */
  url(path: string): string;
  /** An `http://` URL for a path. */
  httpUrl(path: string): string;
}

/**
 * Starts the app on a free port with `env` as its environment (nothing else
 * is read) and `options` (a fake clock, a logger that records) as its parts.
 */
export async function startServer(
  env: Record<string, string> = {},
  options: AppOptions = {},
): Promise<TestServer> {
  // Memory unless a test asks for another engine: nothing is written to disk.
  const app = await createApp(loadConfig({ CHAT_ENGINE: "memory", ...env }), options);
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, app.handler);
  const port = server.addr.port;
  return {
    app,
    port,
    url: (path) => `ws://127.0.0.1:${port}${path}`,
    httpUrl: (path) => `http://127.0.0.1:${port}${path}`,
    async [Symbol.asyncDispose]() {
      await app[Symbol.asyncDispose]();
      await server.shutdown();
    },
  };
}
