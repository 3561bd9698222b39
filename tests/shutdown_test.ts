import assert from "node:assert/strict";
import { TestClient } from "./helpers/ws_client.ts";

const ROOT = new URL("..", import.meta.url);
const EXIT_LIMIT_MS = 5000;
const START_LIMIT_MS = 15_000;

/** A clean environment: only what Deno needs plus the given variables. */
function environment(vars: Record<string, string>): Record<string, string> {
  // The memory engine: this tests the core, which must start with read-only permissions.
  const env: Record<string, string> = { NO_COLOR: "1", CHAT_ENGINE: "memory", ...vars };
  for (const name of ["PATH", "HOME", "DENO_DIR", "XDG_CACHE_HOME", "TMPDIR"]) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  return env;
}

function spawnMain(vars: Record<string, string>): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "--allow-env", "--allow-read", "main.ts"],
    cwd: ROOT,
    clearEnv: true,
    env: environment(vars),
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
}

/** Resolves with `promise`, or rejects once `ms` pass; never leaves the timer behind. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took over ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, limit]);
  } finally {
    clearTimeout(timer);
  }
}

/** Reads stderr line by line, keeping every line for the report. */
class StderrLines {
  readonly lines: string[] = [];
  readonly done: Promise<void>;
  #waiters: { match: (line: string) => boolean; resolve: (line: string) => void }[] = [];

  constructor(stream: ReadableStream<Uint8Array>) {
    this.done = this.#read(stream);
  }

  /** Resolves with the first line (past or future) that matches. */
  find(match: (line: string) => boolean): Promise<string> {
    const found = this.lines.find(match);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve) => this.#waiters.push({ match, resolve }));
  }

  async #read(stream: ReadableStream<Uint8Array>): Promise<void> {
    let rest = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      rest += chunk;
      const parts = rest.split("\n");
      rest = parts.pop() ?? "";
      for (const line of parts) this.#push(line);
    }
    if (rest !== "") this.#push(rest);
  }

  #push(line: string): void {
    this.lines.push(line);
    this.#waiters = this.#waiters.filter((w) => {
      if (!w.match(line)) return true;
      w.resolve(line);
      return false;
    });
  }
}

function listeningPort(line: string): number | undefined {
  try {
    const entry = JSON.parse(line);
    return entry.event === "listening" && typeof entry.port === "number" ? entry.port : undefined;
  } catch {
    return undefined;
  }
}

Deno.test("a signal closes every socket with 1001 and the process exits 0", async (t) => {
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    await t.step(signal, async () => {
      const child = spawnMain({ PORT: "0", HOST: "127.0.0.1", LOG_LEVEL: "info" });
      const stderr = new StderrLines(child.stderr);
      let exited = false;
      try {
        const line = await within(
          Promise.race([
            stderr.find((l) => listeningPort(l) !== undefined),
            child.status.then((s) => {
              throw new Error(`main.ts exited early: ${s.code}\n${stderr.lines.join("\n")}`);
            }),
          ]),
          START_LIMIT_MS,
          "start",
        );
        const port = listeningPort(line)!;
        await using client = await TestClient.connect(`ws://127.0.0.1:${port}/ws/chat/alice`);
        await client.next("welcome");
        await stderr.find((l) => l.includes('"event":"connect"'));

        child.kill(signal);
        const closed = await client.waitClosed(EXIT_LIMIT_MS);
        assert.equal(closed.code, 1001);
        assert.equal(closed.reason, "Server shutting down");
        const status = await within(child.status, EXIT_LIMIT_MS, "exit");
        exited = true;
        assert.equal(status.code, 0, stderr.lines.join("\n"));
        await stderr.done;
        assert.ok(stderr.lines.some((l) => l.includes('"event":"shutdown"')));
      } finally {
        if (!exited) {
          try {
            child.kill("SIGKILL");
          } catch {
            // Already gone.
          }
          await child.status;
        }
        await stderr.done;
      }
    });
  }
});

Deno.test("a bad configuration exits 1 with one line naming the variable and value", async (t) => {
  const cases: [string, Record<string, string>, string, string][] = [
    ["PORT=abc", { PORT: "abc" }, "PORT", "abc"],
    [
      "timeout below interval",
      { HEARTBEAT_INTERVAL_MS: "1000", HEARTBEAT_TIMEOUT_MS: "10" },
      "HEARTBEAT_TIMEOUT_MS",
      "10",
    ],
    ["negative MAX_CONNECTIONS", { MAX_CONNECTIONS: "-3" }, "MAX_CONNECTIONS", "-3"],
  ];
  for (const [name, vars, variable, value] of cases) {
    await t.step(name, async () => {
      const child = spawnMain({ HOST: "127.0.0.1", ...vars });
      const stderr = new StderrLines(child.stderr);
      const status = await within(child.status, START_LIMIT_MS, "exit");
      await stderr.done;
      assert.equal(status.code, 1);
      const lines = stderr.lines.filter((l) => l.trim() !== "");
      assert.equal(lines.length, 1, lines.join("\n"));
      assert.ok(lines[0]!.includes(variable), lines[0]);
      assert.ok(lines[0]!.includes(value), lines[0]);
    });
  }
});
