/**
 * Runs the server as a child process (`deno run main.ts` or `deno serve
 * serve.ts`) and finds its port in the `listening` log line.
 *
 * @module
 */

/** Options of {@linkcode spawnServer}. */
export interface SpawnOptions {
  /** Arguments after the deno executable, e.g. `["run", "-A", "main.ts"]`. */
  args: string[];
  /** Environment of the child, added to a minimal one. */
  env: Record<string, string>;
  /** Milliseconds to wait for the `listening` line. Default 30000. */
  timeoutMs?: number;
  /**
   * `ulimit` arguments (`-n 256`) the child runs under: it is started by
   * bash, which sets the limit and `exec`s Deno, so the pid stays Deno's.
   */
  ulimit?: string;
}

/** A running server process; dispose kills it (SIGKILL) if still running. */
export interface ServerProcess extends AsyncDisposable {
  /** The port from the first `listening` log line. */
  port: number;
  /** The child's process id. */
  pid: number;
  /** Every stderr line so far. */
  lines: string[];
  /** Resolves with the exit status. */
  status: Promise<Deno.CommandStatus>;
  /** Sends a signal; ignores a process that already exited. */
  kill(signal: Deno.Signal): void;
}

/** Starts a child and resolves once it logged `listening`; rejects with its output otherwise. */
export async function spawnServer(options: SpawnOptions): Promise<ServerProcess> {
  const [command, args] = options.ulimit === undefined
    ? [Deno.execPath(), options.args]
    : ["bash", [
      "-c",
      `ulimit ${options.ulimit} && exec "$0" "$@"`,
      Deno.execPath(),
      ...options.args,
    ]];
  const child = new Deno.Command(command, {
    args,
    cwd: new URL("../..", import.meta.url).pathname,
    clearEnv: true,
    env: {
      PATH: Deno.env.get("PATH") ?? "",
      HOME: Deno.env.get("HOME") ?? "",
      DENO_DIR: Deno.env.get("DENO_DIR") ?? "",
      NO_COLOR: "1",
      ...options.env,
    },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  const listening = Promise.withResolvers<number>();
  const drained = (async () => {
    let rest = "";
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      rest += chunk;
      const parts = rest.split("\n");
      rest = parts.pop() ?? "";
      for (const line of parts) {
        lines.push(line);
        try {
          const event = JSON.parse(line);
          if (event.event === "listening") listening.resolve(event.port);
        } catch {
          // Not a log line.
        }
      }
    }
    if (rest !== "") lines.push(rest);
  })();
  const status = child.status.then(async (s) => {
    await drained;
    return s;
  });
  let exited = false;
  status.then(() => {
    exited = true;
    listening.reject(new Error(`Server exited before listening:\n${lines.join("\n")}`));
  });
  const kill = (signal: Deno.Signal) => {
    if (exited) return;
    try {
      child.kill(signal);
    } catch {
      // Already gone.
    }
  };
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`Server did not listen in time:\n${lines.join("\n")}`)),
      options.timeoutMs ?? 30_000,
    );
  });
  try {
    const port = await Promise.race([listening.promise, timeout]);
    return {
      port,
      pid: child.pid,
      lines,
      status,
      kill,
      async [Symbol.asyncDispose]() {
        kill("SIGKILL");
        await status;
      },
    };
  } catch (error) {
    kill("SIGKILL");
    await status;
    throw error;
  } finally {
    clearTimeout(timer);
  }
}
