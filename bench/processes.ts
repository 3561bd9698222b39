/**
 * Starts the servers and load generators of the benchmark as subprocesses,
 * pinned to CPUs where `taskset` exists, and reads their CPU time and
 * memory from /proc.
 *
 * @module
 */

import { findOnPath } from "../tools/find_on_path.ts";
import { connectInspector } from "./inspector.ts";
import type { LoadConfig, LoadResult } from "./load.ts";
import { lines } from "./lines.ts";
import { readLog, stopper, waitListening } from "./server_start.ts";

/** Which server to start. */
export type ServerKind = "ours" | "baseline";

/** Options of {@linkcode startServer}. */
export interface ServerOptions {
  /** `ours` runs main.ts; `baseline` runs bench/baseline_server.ts. */
  kind: ServerKind;
  /** Environment on top of the benchmark defaults (ours only needs them). Default none. */
  env?: Record<string, string>;
  /** CPU list for taskset, e.g. `"0"`; ignored without taskset. Default: not pinned. */
  cpus?: string;
  /** Writes a V8 CPU profile into this directory on exit. Default: no profile. */
  cpuProfDir?: string;
  /** Opens the V8 inspector, so {@linkcode ServerProcess.collectGarbage} works. Default false. */
  inspect?: boolean;
  /**
   * V8 flags (`--v8-flags=`), `""` for none. Default: for ours those of
   * `deno task start` ({@linkcode startTaskV8Flags}), for the baseline none.
   */
  v8Flags?: string;
  /** The script of ours, relative to the repository. Default `main.ts`. */
  script?: string;
  /** Port on 127.0.0.1 (a restarted server takes its predecessor's). Default: a free one. */
  port?: number;
}

/** A running server. */
export interface ServerProcess extends AsyncDisposable {
  readonly kind: ServerKind;
  readonly pid: number;
  readonly port: number;
  /** `ws://127.0.0.1:<port>`. */
  readonly base: string;
  /** The inspector's port when started with `inspect`. */
  readonly inspectPort: number | undefined;
  /** User plus system CPU seconds of the process so far. */
  cpuSeconds(): Promise<number>;
  /** Current and peak resident memory in kB. */
  memory(): Promise<{ rssKb: number; hwmKb: number }>;
  /**
   * Forces a full garbage collection over the inspector (see `inspect`) and
   * returns the JS heap in use afterwards, in kB.
   */
  collectGarbage(): Promise<number>;
  /** The last lines the server wrote on stderr. */
  log(): string[];
  /** Stops the server: SIGTERM when `graceful` (needed for CPU profiles), else SIGKILL. */
  stop(options?: { graceful?: boolean }): Promise<void>;
}

/** Settings that keep our server's protective limits out of a load test. */
export const BENCH_ENV: Readonly<Record<string, string>> = Object.freeze({
  HOST: "127.0.0.1",
  PORT: "0",
  LOG_LEVEL: "warn",
  CHAT_ENGINE: "memory",
  RATE_LIMIT_PER_S: "1000000",
  RATE_LIMIT_BURST: "1000000",
  MAX_CONNECTIONS: "1000000",
  MAX_CONNECTIONS_PER_IP: "1000000",
  HANDSHAKES_PER_IP_PER_MIN: "10000000",
  ROOMS_PER_IP_PER_MIN: "1000000",
  MAX_BUFFERED_BYTES: String(2 ** 30),
});

const ROOT = new URL("../", import.meta.url).pathname;

let clockTicks: number | undefined;
let tasksetPath: string | null | undefined;

/** Whether processes can be pinned to CPUs. */
export function canPin(): boolean {
  tasksetPath ??= findOnPath("taskset") ?? null;
  return tasksetPath !== null;
}

async function ticksPerSecond(): Promise<number> {
  if (clockTicks !== undefined) return clockTicks;
  try {
    const out = await new Deno.Command("getconf", { args: ["CLK_TCK"], stderr: "null" }).output();
    clockTicks = Number(new TextDecoder().decode(out.stdout).trim()) || 100;
  } catch {
    clockTicks = 100;
  }
  return clockTicks;
}

/** User plus system CPU seconds of a process, from /proc/<pid>/stat. */
export async function cpuSeconds(pid: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  // Fields after the command name, which may itself hold spaces.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / await ticksPerSecond();
}

/**
 * CPU seconds of every process on the machine, by pid: with two snapshots
 * the runner sees how much CPU other people's processes took meanwhile.
 */
export async function allCpuSeconds(): Promise<Map<number, number>> {
  const ticks = await ticksPerSecond();
  const result = new Map<number, number>();
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = await Deno.readTextFile(`/proc/${entry.name}/stat`);
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      result.set(Number(entry.name), (Number(fields[11]) + Number(fields[12])) / ticks);
    } catch {
      // Exited meanwhile.
    }
  }
  return result;
}

/** CPU seconds taken between two {@linkcode allCpuSeconds} snapshots by processes not excluded. */
export function otherCpuSeconds(
  before: Map<number, number>,
  after: Map<number, number>,
  excluded: readonly number[],
): number {
  let total = 0;
  for (const [pid, seconds] of after) {
    if (excluded.includes(pid)) continue;
    total += seconds - (before.get(pid) ?? 0);
  }
  return total;
}

/** The pid of a running process whose command line contains every one of `parts`, if any. */
export async function findProcess(parts: readonly string[]): Promise<number | undefined> {
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const cmdline = (await Deno.readTextFile(`/proc/${entry.name}/cmdline`)).replaceAll(
        "\0",
        " ",
      );
      if (parts.every((part) => cmdline.includes(part))) return Number(entry.name);
    } catch {
      // Exited meanwhile.
    }
  }
  return undefined;
}

/** Pins a running process (all its threads) to a CPU list; false without taskset. */
export async function pin(pid: number, cpus: string): Promise<boolean> {
  if (!canPin()) return false;
  const { success } = await new Deno.Command(tasksetPath!, {
    args: ["-a", "-p", "-c", cpus, String(pid)],
    stdout: "null",
    stderr: "null",
  }).output();
  return success;
}

/** VmRSS and VmHWM of a process in kB, from /proc/<pid>/status. */
export async function memory(pid: number): Promise<{ rssKb: number; hwmKb: number }> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(status)?.[1]);
  return { rssKb: field("VmRSS"), hwmKb: field("VmHWM") };
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

/** The command line: raise the descriptor limit to the hard one, pin, lower the priority, run deno. */
function command(
  cpus: string | undefined,
  args: string[],
  niceness?: number,
): { cmd: string; args: string[] } {
  const pinned = cpus !== undefined && canPin() ? [tasksetPath!, "-c", cpus] : [];
  const nice = niceness === undefined ? undefined : findOnPath("nice");
  const lowered = nice === undefined ? [] : [nice, "-n", String(niceness)];
  const argv = [...pinned, ...lowered, Deno.execPath(), ...args];
  if (findOnPath("bash") === undefined) return { cmd: argv[0]!, args: argv.slice(1) };
  // exec keeps the pid: /proc/<pid> is the deno process itself.
  return {
    cmd: "bash",
    args: ["-c", 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"', "bash", ...argv],
  };
}

/**
 * The `--v8-flags=` value of the `start` task in deno.json, `""` when it has
 * none: the benchmark runs our server the way users start it.
 */
export function startTaskV8Flags(): string {
  const config = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`));
  const start = config?.tasks?.start;
  if (typeof start !== "string") throw new TypeError(`Invalid start task in deno.json: ${start}`);
  return /--v8-flags=(\S+)/.exec(start)?.[1] ?? "";
}

/** The `deno` arguments that run the server `options` describe, and its inspector's port. */
function serverArgs(options: ServerOptions): { deno: string[]; inspectPort: number | undefined } {
  const deno = ["run", "--allow-all", "--unstable-kv"];
  const v8Flags = options.v8Flags ?? (options.kind === "ours" ? startTaskV8Flags() : "");
  if (v8Flags !== "") deno.push(`--v8-flags=${v8Flags}`);
  if (options.cpuProfDir !== undefined) {
    deno.push("--cpu-prof", `--cpu-prof-dir=${options.cpuProfDir}`);
  }
  const inspectPort = options.inspect ? freePort() : undefined;
  if (inspectPort !== undefined) deno.push(`--inspect=127.0.0.1:${inspectPort}`);
  deno.push(options.kind === "ours" ? options.script ?? "main.ts" : "bench/baseline_server.ts");
  return { deno, inspectPort };
}

/** Starts a server on a free port and resolves once it listens. */
export async function startServer(options: ServerOptions): Promise<ServerProcess> {
  const { deno, inspectPort } = serverArgs(options);
  const { cmd, args } = command(options.cpus, deno);
  // At LOG_LEVEL=warn our server does not log `listening`: probe a chosen port too.
  const chosen = options.port ?? freePort();
  const child = new Deno.Command(cmd, {
    args,
    cwd: ROOT,
    env: { ...BENCH_ENV, PORT: String(chosen), ...options.env },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const listening = Promise.withResolvers<number>();
  const { log, drained } = readLog(child.stderr, { kind: options.kind, listening });
  const port = await waitListening({ kind: options.kind, child, chosen, listening, drained });
  const pid = child.pid;
  const stop = stopper(child, drained);
  return {
    kind: options.kind,
    pid,
    port,
    base: `ws://127.0.0.1:${port}`,
    inspectPort,
    cpuSeconds: () => cpuSeconds(pid),
    memory: () => memory(pid),
    collectGarbage: () => {
      if (inspectPort === undefined) {
        return Promise.reject(new Error(`Server started without inspect: ${options.kind}`));
      }
      return collectGarbage(inspectPort);
    },
    log: () => [...log],
    stop: (stopOptions) => stop(stopOptions?.graceful ?? false),
    [Symbol.asyncDispose]: () => stop(false),
  };
}

/** Asks the inspector on `port` for a full GC, then for the heap in use (kB). */
async function collectGarbage(port: number): Promise<number> {
  await using session = await connectInspector(port);
  await session.call("HeapProfiler.collectGarbage");
  const usage = await session.call("Runtime.getHeapUsage");
  return Number(usage.usedSize) / 1024;
}

/** A running load generator process; `R` is what it prints as a result. */
export interface LoadProcess<R = LoadResult> extends AsyncDisposable {
  readonly pid: number;
  /** Resolves once every client is connected (ready). */
  readonly ready: Promise<{ connectMs: number }>;
  /** Sends `run`, `measure`, `pause` or `stop`. */
  send(command: "run" | "measure" | "pause" | "stop"): Promise<void>;
  /** Resolves with the next result not yet taken: each `pause` and the `stop` print one. */
  nextResult(): Promise<R>;
}

/**
 * What a load process prints, in order: `ready` once, then one result per
 * `pause` and the `stop`.
 */
class LoadEvents<R> {
  readonly ready = Promise.withResolvers<{ connectMs: number }>();
  // Results in the order printed; a result is resolved before or after it is asked for.
  #results: PromiseWithResolvers<R>[] = [];
  #printed = 0;
  #taken = 0;
  #failure: Error | undefined;

  constructor() {
    this.ready.promise.catch(() => {});
  }

  #slot(i: number): PromiseWithResolvers<R> {
    while (this.#results.length <= i) {
      const r = Promise.withResolvers<R>();
      // Observed through nextResult(); keep a failure nobody asked for from being unhandled.
      r.promise.catch(() => {});
      this.#results.push(r);
    }
    return this.#results[i]!;
  }

  /** The next result not yet taken. */
  next(): Promise<R> {
    const i = this.#taken++;
    return this.#failure !== undefined && i >= this.#printed
      ? Promise.reject(this.#failure)
      : this.#slot(i).promise;
  }

  /** Handles one line of the process's stdout; lines that are not JSON are skipped. */
  line(line: string): void {
    let event: { event?: string; message?: string; connectMs?: number };
    try {
      event = JSON.parse(line);
    } catch {
      return;
    }
    if (event.event === "ready") this.ready.resolve({ connectMs: event.connectMs ?? NaN });
    else if (event.event === "result") this.#slot(this.#printed++).resolve(event as R);
    else if (event.event === "error") {
      this.#failure ??= new Error(`Load generator failed: ${event.message}`);
      this.ready.reject(this.#failure);
    }
  }

  /** The process's stdout ended. */
  ended(): void {
    this.#failure ??= new Error("Load generator exited without a result");
    this.ready.reject(this.#failure);
    // Nothing prints after exit: every result asked for and not printed fails.
    for (let i = this.#printed; i < this.#results.length; i++) {
      this.#results[i]!.reject(this.#failure);
    }
  }
}

/** Writes commands, one per line, to a load process's stdin; `stop` closes it. */
function commandWriter(stdin: WritableStream<Uint8Array>): {
  send(command: string): Promise<void>;
  close(): Promise<void>;
} {
  const writer = stdin.getWriter();
  const encoder = new TextEncoder();
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await writer.close().catch(() => {});
  };
  return {
    close,
    async send(command) {
      if (closed) return;
      await writer.write(encoder.encode(command + "\n"));
      if (command === "stop") await close();
    },
  };
}

/** Options of {@linkcode startLoad}. */
export interface LoadProcessOptions {
  /** CPU list for taskset, e.g. `"1"`. Default: not pinned. */
  cpus?: string;
  /**
   * Runs the process at this niceness (`nice -n`), so a load that stands in
   * for remote devices yields its CPU to a measured one. Default: not lowered.
   */
  niceness?: number;
  /** The load script, relative to the repository, speaking load.ts's stdin and stdout. Default `bench/load.ts`. */
  script?: string;
}

/**
 * Starts one load generator process with its configuration; `R` is the
 * result its script prints (load.ts's {@linkcode LoadResult} by default).
 */
export function startLoad<R = LoadResult>(
  config: LoadConfig | object,
  options: LoadProcessOptions = {},
): LoadProcess<R> {
  const { cmd, args } = command(options.cpus, [
    "run",
    "--allow-net",
    `${ROOT}${options.script ?? "bench/load.ts"}`,
    JSON.stringify(config),
  ], options.niceness);
  const child = new Deno.Command(cmd, {
    args,
    cwd: ROOT,
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const stdin = commandWriter(child.stdin);
  const events = new LoadEvents<R>();
  const read = (async () => {
    for await (const line of lines(child.stdout)) events.line(line);
    events.ended();
  })();
  return {
    pid: child.pid,
    ready: events.ready.promise,
    nextResult: () => events.next(),
    send: (command) => stdin.send(command),
    async [Symbol.asyncDispose]() {
      await stdin.close();
      try {
        child.kill("SIGKILL");
      } catch {
        // Already exited.
      }
      await child.status;
      await read;
    },
  };
}
