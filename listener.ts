/**
 * The HTTP listener of `main.ts`: `Deno.serve`, started again on the same
 * address whenever its accept loop dies.
 *
 * Out of file descriptors (EMFILE), Deno's accept loop ends, the listening
 * socket is closed and `finished` rejects; without a restart the process has
 * nothing left to wait for and exits. Connections already accepted,
 * WebSockets included, keep working on the dead server, so binding the same
 * hostname and port again after a short wait is all it takes to keep
 * serving. Binding needs a descriptor too: while that fails with EMFILE the
 * bind is retried after the same wait.
 *
 * ```ts
 * const listener = await serveForever({ hostname: "0.0.0.0", port: 8000, handler });
 * await listener.finished; // resolves after listener.shutdown()
 * ```
 *
 * @module
 */

import { type Scheduler, systemScheduler } from "./chat/clock.ts";
import { withDefaults } from "./chat/options.ts";

export type { Scheduler, TimerHandle } from "./chat/clock.ts";

/** Where a failure happened: the accept loop died, or binding again failed. */
export type ListenStage = "accept" | "bind";

/** Starts an HTTP server; `Deno.serve` unless a test stands in for it. */
export type ServeFunction = (
  options: Deno.ServeTcpOptions,
  handler: Deno.ServeHandler<Deno.NetAddr>,
) => Deno.HttpServer<Deno.NetAddr>;

/** Options of {@linkcode serveForever}. */
export interface ServeForeverOptions {
  /** The address to listen on. */
  hostname: string;
  /** The port; 0 picks a free one, which restarts then keep. */
  port: number;
  /** Answers every request. */
  handler: Deno.ServeHandler<Deno.NetAddr>;
  /** Called once, on the first bind; restarts are reported by `onError` only. */
  onListen?: (addr: Deno.NetAddr) => void;
  /** Called for every failed accept loop and every bind that failed for descriptors. */
  onError?: (error: unknown, stage: ListenStage) => void;
  /** Runs the wait before a restart. Default: the global timers. */
  scheduler?: Scheduler;
  /** Milliseconds between a failure and the next bind. Default 100. */
  backoffMs?: number;
  /** Starts a server. Default: `Deno.serve`. */
  serve?: ServeFunction;
}

/** A listener that restarts itself until shut down. */
export interface Listener {
  /** The bound address (with the actual port when 0 was asked for). */
  readonly addr: Deno.NetAddr;
  /**
   * Resolves after {@linkcode Listener.shutdown}; rejects only when binding
   * again fails for something other than descriptors (the port was taken).
   */
  readonly finished: Promise<void>;
  /** Stops listening (cancelling a pending restart) and drains the current server. */
  shutdown(): Promise<void>;
}

/** The defaults of {@linkcode ServeForeverOptions}. */
export const DEFAULT_SERVE_FOREVER: Readonly<{
  onListen: (addr: Deno.NetAddr) => void;
  onError: (error: unknown, stage: ListenStage) => void;
  scheduler: Scheduler;
  backoffMs: number;
  serve: ServeFunction;
}> = Object.freeze({
  onListen: () => {},
  onError: () => {},
  scheduler: systemScheduler,
  // Descriptors come back as soon as clients close: a long wait would only
  // lengthen the outage, and 100 ms caps the attempts at ten a second.
  backoffMs: 100,
  serve: (options: Deno.ServeTcpOptions, handler: Deno.ServeHandler<Deno.NetAddr>) =>
    Deno.serve(options, handler),
});

/** True for the errors that free descriptors cure: EMFILE (process) and ENFILE (system). */
export function isOutOfDescriptors(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === "EMFILE" || code === "ENFILE";
}

/**
 * Binds `Deno.serve` and keeps it bound: when its `finished` rejects (EMFILE
 * or any other accept error) while not shutting down, reports the error,
 * waits `backoffMs` and binds the same hostname and port again. Resolves
 * once the first bind succeeded; throws when it fails for something other
 * than descriptors (an address in use, a bad hostname), and a RangeError
 * for a negative or non-finite `backoffMs`.
 */
export async function serveForever(options: ServeForeverOptions): Promise<Listener> {
  const listener = new RestartingListener(options);
  await listener.start();
  return listener;
}

type Settings = ServeForeverOptions & typeof DEFAULT_SERVE_FOREVER;

class RestartingListener implements Listener {
  readonly #settings: Settings;
  #server: Deno.HttpServer<Deno.NetAddr> | undefined;
  #addr: Deno.NetAddr | undefined;
  #finished: Promise<void> = Promise.resolve();
  #stopping = false;
  #wake: (() => void) | undefined;

  /** Throws a RangeError for a negative or non-finite backoff. */
  constructor(options: ServeForeverOptions) {
    this.#settings = withDefaults(DEFAULT_SERVE_FOREVER, options);
    const { backoffMs } = this.#settings;
    if (!(Number.isFinite(backoffMs) && backoffMs >= 0)) {
      throw new RangeError(`Invalid listener backoff: ${backoffMs}`);
    }
  }

  get addr(): Deno.NetAddr {
    if (this.#addr === undefined) throw new Error("Listener not started: no address yet");
    return this.#addr;
  }

  get finished(): Promise<void> {
    return this.#finished;
  }

  async start(): Promise<void> {
    const server = await this.#bind(this.#settings.port);
    if (server === undefined) return;
    this.#addr = server.addr;
    this.#settings.onListen(server.addr);
    this.#finished = this.#run(server);
  }

  async shutdown(): Promise<void> {
    this.#stopping = true;
    this.#wake?.();
    await this.#server?.shutdown();
    await this.#finished;
  }

  /** Waits on each server in turn; returns once shut down. */
  async #run(first: Deno.HttpServer<Deno.NetAddr>): Promise<void> {
    let server: Deno.HttpServer<Deno.NetAddr> | undefined = first;
    while (server !== undefined) {
      this.#server = server;
      try {
        await server.finished;
      } catch (error) {
        if (!this.#stopping) this.#settings.onError(error, "accept");
      }
      // A dead server's shutdown has nothing to drain; forget it.
      this.#server = undefined;
      if (this.#stopping) return;
      await this.#sleep();
      server = await this.#bind(this.addr.port);
    }
  }

  /** Binds, retrying while descriptors run out; undefined once shutting down. */
  async #bind(port: number): Promise<Deno.HttpServer<Deno.NetAddr> | undefined> {
    const { hostname, handler, serve } = this.#settings;
    while (!this.#stopping) {
      try {
        // onListen stops Deno printing "Listening on" to stdout at every restart.
        return serve({ hostname, port, onListen: () => {} }, handler);
      } catch (error) {
        if (!isOutOfDescriptors(error)) throw error;
        this.#settings.onError(error, "bind");
      }
      await this.#sleep();
    }
    return undefined;
  }

  /** Waits `backoffMs`, or less when shutdown wakes it. */
  #sleep(): Promise<void> {
    const { scheduler, backoffMs } = this.#settings;
    return new Promise((resolve) => {
      const handle = scheduler.setTimeout(() => {
        this.#wake = undefined;
        resolve();
      }, backoffMs);
      this.#wake = () => {
        scheduler.clearTimeout(handle);
        this.#wake = undefined;
        resolve();
      };
    });
  }
}
