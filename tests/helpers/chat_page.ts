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
import type { Page } from "./cdp.ts";
import { TestClient } from "./ws_client.ts";

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

/** Who a {@linkcode roomClient} is and where. */
export interface RoomClientOptions {
  /** The username. */
  name: string;
  /** The room joined. */
  room: string;
  /** A browser key, offered as the page offers it (`key.<secret>`); none by default. */
  key?: string;
}

/** A test client beside the page, in a room of the page's server, past its welcome. */
export async function roomClient(base: string, who: RoomClientOptions): Promise<TestClient> {
  const url = `${base.replace("http", "ws")}/ws/chat/${
    encodeURIComponent(who.name)
  }?room=${who.room}`;
  const protocols = who.key === undefined ? ["chat"] : ["chat", `key.${who.key}`];
  const client = await TestClient.connect(url, { protocols });
  await client.next("welcome");
  return client;
}

/** A JavaScript literal of a value, to put in an expression the page evaluates. */
export const js: (value: unknown) => string = JSON.stringify;

/** An expression true when the page's status is `state` (idle, connected, …). */
export function statusIs(state: string): string {
  return `document.getElementById("status").dataset.state === ${js(state)}`;
}

/** Where and as whom a page joins. */
export interface JoinAs {
  /** The server's `http://` base. */
  base: string;
  /** The name typed into the join form. */
  name: string;
  /** The room, given as `?room=`. Default `lobby`. */
  room?: string;
}

/** Opens the page and submits the join form, without waiting for the answer. */
export async function submitJoin(page: Page, as: JoinAs): Promise<void> {
  await page.goto(`${as.base}/?room=${encodeURIComponent(as.room ?? "lobby")}`);
  await page.evaluate(`document.getElementById("username").value = ${js(as.name)}`);
  await page.click("#connect");
}

/** Opens the page, submits the join form and waits until it is connected. */
export async function joinPage(page: Page, as: JoinAs): Promise<void> {
  await submitJoin(page, as);
  await page.waitFor(statusIs("connected"));
}
