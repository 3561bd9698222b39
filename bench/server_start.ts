/**
 * The steps of starting a server process and stopping it: reading its log,
 * waiting for its port, and killing it.
 *
 * @module
 */

import { lines } from "./lines.ts";
import type { ServerKind } from "./processes.ts";

const START_TIMEOUT_MS = 30_000;
const LOG_LINES = 50;

/**
 * Reads the server's stderr to its end, keeping the last `LOG_LINES` lines
 * for errors, and resolves `listening` with the port it logs (rejects if it
 * exits first). `drained` resolves once stderr ends.
 */
export function readLog(
  stderr: ReadableStream<Uint8Array>,
  { kind, listening }: { kind: ServerKind; listening: PromiseWithResolvers<number> },
): { log: string[]; drained: Promise<void> } {
  const log: string[] = [];
  const drained = (async () => {
    for await (const line of lines(stderr)) {
      log.push(line);
      if (log.length > LOG_LINES) log.shift();
      if (!line.includes('"listening"')) continue;
      try {
        const port = (JSON.parse(line) as { port?: unknown }).port;
        if (typeof port === "number") listening.resolve(port);
      } catch {
        // Not a log line of ours.
      }
    }
    listening.reject(new Error(`Server exited before listening: ${kind}\n${log.join("\n")}`));
  })();
  return { log, drained };
}

/** Tries to connect to `port` every 50 ms and calls `found` once it accepts; the result stops it. */
function probePort(port: number, found: (port: number) => void): () => Promise<void> {
  let probing = true;
  const probe = (async () => {
    while (probing) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      try {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port });
        conn.close();
        found(port);
        return;
      } catch {
        // Not listening yet.
      }
    }
  })();
  return async () => {
    probing = false;
    await probe;
  };
}

/** A server being started: its process, its log's reader and the port it chose. */
export interface Starting {
  kind: ServerKind;
  child: Deno.ChildProcess;
  /** The port given in `PORT`, probed in case the server does not log `listening`. */
  chosen: number;
  listening: PromiseWithResolvers<number>;
  drained: Promise<void>;
}

/** Waits for the server's port; kills the server if it does not listen in time. */
export async function waitListening(starting: Starting): Promise<number> {
  const { kind, child, chosen, listening, drained } = starting;
  const timer = setTimeout(
    () => listening.reject(new Error(`Server did not listen in time: ${kind}`)),
    START_TIMEOUT_MS,
  );
  const stopProbe = probePort(chosen, listening.resolve);
  try {
    return await listening.promise;
  } catch (error) {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
    await child.status;
    await drained;
    throw error;
  } finally {
    clearTimeout(timer);
    await stopProbe();
  }
}

/**
 * The server's stop: SIGTERM when graceful, else SIGKILL, and SIGKILL after
 * 10 s if it still runs; every call after the first returns the first's promise.
 */
export function stopper(
  child: Deno.ChildProcess,
  drained: Promise<void>,
): (graceful: boolean) => Promise<void> {
  let stopped: Promise<void> | undefined;
  return (graceful) => {
    stopped ??= (async () => {
      try {
        child.kill(graceful ? "SIGTERM" : "SIGKILL");
      } catch {
        // Already exited.
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          try {
            child.kill("SIGKILL");
          } catch {
            // Exited meanwhile.
          }
          resolve();
        }, 10_000);
      });
      await Promise.race([child.status.then(() => {}), late]);
      clearTimeout(timer);
      await child.status;
      await drained;
    })();
    return stopped;
  };
}
