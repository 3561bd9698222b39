/**
 * The chat page's server and small page helpers for the browser tests: an
 * app on a free port of 127.0.0.1 and expressions to wait on.
 *
 * ```ts
 * await using server = await startPageServer();
 * await page.goto(`${server.base}/`);
 * await page.waitFor(statusIs("idle"));
 * ```
 *
 * @module
 */

import { type App, createApp, loadConfig } from "../../main.ts";

/** A running app for a page to load. */
export interface PageServer extends AsyncDisposable {
  /** The application, for its manager. */
  readonly app: App;
  /** `http://127.0.0.1:<port>`. */
  readonly base: string;
  /** The port on 127.0.0.1. */
  readonly port: number;
}

/** Starts the app with a memory engine and `env` on a free port (or `port`). */
export async function startPageServer(
  env: Record<string, string> = {},
  port = 0,
): Promise<PageServer> {
  const app = await createApp(loadConfig({ CHAT_ENGINE: "memory", ...env }));
  const server = Deno.serve({ port, hostname: "127.0.0.1", onListen() {} }, app.handler);
  return {
    app,
    base: `http://127.0.0.1:${server.addr.port}`,
    port: server.addr.port,
    async [Symbol.asyncDispose]() {
      await app[Symbol.asyncDispose]();
      await server.shutdown();
    },
  };
}

/** A JavaScript literal of a value, to put in an expression the page evaluates. */
export const js: (value: unknown) => string = JSON.stringify;

/** An expression true when the page's status is `state` (idle, connected, …). */
export function statusIs(state: string): string {
  return `document.getElementById("status").dataset.state === ${js(state)}`;
}
