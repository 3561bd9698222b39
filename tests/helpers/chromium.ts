/**
 * Starts and stops Debian's headless chromium for browser tests.
 *
 * ```ts
 * await using browser = await launchChromium();
 * await using page = await browser.newPage({ width: 800, height: 600 });
 * await page.goto("http://127.0.0.1:8000/");
 * ```
 *
 * @module
 */

import { findOnPath, isExecutableFile } from "../../tools/find_on_path.ts";
import { CdpConnection, Page, type PageOptions } from "./cdp.ts";

/** The message for tests skipped (or failing in CI) because chromium is missing. */
export const CHROMIUM_MISSING = "chromium not found; install it with: apt-get install -y chromium";

const DEBIAN_CHROMIUM = "/usr/bin/chromium";
const PATH_NAMES = ["chromium", "chromium-browser", "google-chrome"];

// Keep chromium off the network (the test machine has none) and quiet.
const CHROMIUM_FLAGS = [
  "--headless",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--no-default-browser-check",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-extensions",
  "--remote-debugging-port=0",
];

const DEVTOOLS_LINE = /^DevTools listening on (ws:\/\/\S+)/;
const STDERR_TAIL_CHARS = 4096;
const REMOVE_ATTEMPTS = 5;

/**
 * Finds a chromium executable: Debian's `/usr/bin/chromium`, else `chromium`,
 * `chromium-browser` or `google-chrome` on `PATH`.
 */
export function chromiumPath(): string | undefined {
  if (isExecutableFile(DEBIAN_CHROMIUM)) return DEBIAN_CHROMIUM;
  for (const name of PATH_NAMES) {
    const path = findOnPath(name);
    if (path !== undefined) return path;
  }
  return undefined;
}

/**
 * Whether browser tests should be skipped: chromium is missing and this is not
 * CI (`CI=true`), where a missing browser must fail the run instead.
 */
export function chromiumIgnored(): boolean {
  return chromiumPath() === undefined && Deno.env.get("CI") !== "true";
}

/**
 * Registers a test that needs chromium: skipped where {@linkcode chromiumIgnored},
 * with the reason in its name.
 */
export function browserTest(name: string, fn: (t: Deno.TestContext) => Promise<void>): void {
  const ignore = chromiumIgnored();
  Deno.test({ name: ignore ? `${name} (skipped: ${CHROMIUM_MISSING})` : name, ignore, fn });
}

/** Options for {@linkcode launchChromium}. */
export interface LaunchOptions {
  /**
   * The chromium executable.
   *
   * @default {chromiumPath()}
   */
  path?: string;
  /**
   * How long to wait for chromium to print its DevTools URL, in milliseconds.
   *
   * @default {15000}
   */
  timeoutMs?: number;
}

/** Resolves with `{ value }`, or with undefined once `ms` have passed. */
async function raceTimeout<T>(promise: Promise<T>, ms: number): Promise<{ value: T } | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    return await Promise.race([promise.then((value) => ({ value })), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

interface StderrWatcher {
  /** The browser WebSocket URL, or undefined if stderr ended without one. */
  url: Promise<string | undefined>;
  /** Settles (never rejects) once stderr has been read to its end. */
  done: Promise<void>;
  /** The last few kilobytes of stderr, for error messages. */
  tail(): string;
}

/** Reads stderr to its end, so the pipe never fills, picking out the DevTools URL. */
function watchStderr(stderr: ReadableStream<Uint8Array>): StderrWatcher {
  const url = Promise.withResolvers<string | undefined>();
  let tail = "";
  const done = (async () => {
    const reader = stderr.getReader();
    const decoder = new TextDecoder();
    let found = false;
    let partialLine = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const text = decoder.decode(value, { stream: true });
        tail = (tail + text).slice(-STDERR_TAIL_CHARS);
        if (found) continue;
        const lines = (partialLine + text).split("\n");
        partialLine = lines.pop() ?? "";
        for (const line of lines) {
          const match = DEVTOOLS_LINE.exec(line.trim());
          if (match?.[1] !== undefined) {
            found = true;
            url.resolve(match[1]);
            break;
          }
        }
      }
    } catch (error) {
      tail += `\n${error instanceof Error ? error.message : String(error)}`;
    } finally {
      reader.releaseLock();
      url.resolve(undefined);
    }
  })();
  return { url: url.promise, done, tail: () => tail.trim() || "(no output)" };
}

async function removeDir(path: string): Promise<void> {
  // Helper processes may still be writing into the profile for a moment after exit.
  for (let attempt = 1;; attempt++) {
    try {
      await Deno.remove(path, { recursive: true });
      return;
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return;
      if (attempt >= REMOVE_ATTEMPTS) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100 * attempt));
    }
  }
}

interface ChromiumProcess {
  child: Deno.ChildProcess;
  stderr: StderrWatcher;
  userDataDir: string;
}

/** Waits `graceMs` for chromium to exit, kills it otherwise, then removes its profile. */
async function stopProcess(chromium: ChromiumProcess, graceMs: number): Promise<void> {
  const { child, stderr, userDataDir } = chromium;
  if (graceMs <= 0 || (await raceTimeout(child.status, graceMs)) === undefined) {
    try {
      child.kill("SIGKILL");
    } catch {
      // It exited in the meantime.
    }
  }
  await child.status;
  await stderr.done;
  await removeDir(userDataDir);
}

/** A running headless chromium and the CDP connection to it. Use {@linkcode launchChromium}. */
export class Browser implements AsyncDisposable {
  /** The browser-level DevTools WebSocket URL. */
  readonly wsUrl: string;
  /** The browser-level CDP connection. */
  readonly connection: CdpConnection;
  #process: ChromiumProcess;
  #closing: Promise<void> | undefined;

  private constructor(wsUrl: string, connection: CdpConnection, chromium: ChromiumProcess) {
    this.wsUrl = wsUrl;
    this.connection = connection;
    this.#process = chromium;
  }

  /** Starts chromium; called by {@linkcode launchChromium}. */
  static async launch(options: LaunchOptions = {}): Promise<Browser> {
    const { timeoutMs = 15_000 } = options;
    const path = options.path ?? chromiumPath();
    if (path === undefined) throw new Error(CHROMIUM_MISSING);
    const userDataDir = await Deno.makeTempDir({ prefix: "chromium_profile_" });
    const args = [...CHROMIUM_FLAGS, `--user-data-dir=${userDataDir}`];
    // Chromium refuses to start its sandbox as root (e.g. in containers).
    if (Deno.uid() === 0) args.push("--no-sandbox");
    args.push("about:blank");
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(path, { args, stdin: "null", stdout: "null", stderr: "piped" })
        .spawn();
    } catch (error) {
      await removeDir(userDataDir);
      throw error;
    }
    const chromium: ChromiumProcess = { child, stderr: watchStderr(child.stderr), userDataDir };
    try {
      const url = await raceTimeout(chromium.stderr.url, timeoutMs);
      if (url === undefined) {
        throw new Error(
          `Timed out after ${timeoutMs} ms waiting for chromium to start: ${chromium.stderr.tail()}`,
        );
      }
      if (url.value === undefined) {
        const { code } = await child.status;
        await chromium.stderr.done;
        throw new Error(
          `Chromium exited with code ${code} before printing its DevTools URL: ${chromium.stderr.tail()}`,
        );
      }
      const connection = await CdpConnection.connect(url.value);
      return new Browser(url.value, connection, chromium);
    } catch (error) {
      await stopProcess(chromium, 0);
      throw error;
    }
  }

  /** Opens a page in a fresh browser context (separate storage, like another user). */
  newPage(options: PageOptions = {}): Promise<Page> {
    return Page.open(this.connection, options);
  }

  /**
   * Sends `Browser.close`, kills chromium if it does not exit in time, awaits
   * its exit and removes its profile directory; safe to call twice.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      if (!this.connection.isClosed) {
        const closing = this.connection.send("Browser.close").catch(() => {});
        await raceTimeout(closing, 5000);
      }
      await this.connection.close();
      await stopProcess(this.#process, 5000);
    })();
    return this.#closing;
  }

  /** Same as {@linkcode Browser.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Starts headless chromium with a fresh temporary profile and connects to it
 * over CDP. Throws {@linkcode CHROMIUM_MISSING} when no chromium is found.
 */
export function launchChromium(options: LaunchOptions = {}): Promise<Browser> {
  return Browser.launch(options);
}
