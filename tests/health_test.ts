import assert from "node:assert/strict";
import { createApp } from "../app.ts";
import { loadConfig } from "../chat/config.ts";
import type { EngineStatus } from "../chat/engines/engine.ts";
import { MemoryEngine } from "../chat/engines/memory.ts";

/** A memory engine that reports a status, as Redis does during an outage (of one shard). */
class StatusEngine extends MemoryEngine {
  #status: EngineStatus;
  constructor(status: EngineStatus) {
    super();
    this.#status = status;
  }
  override status(): EngineStatus {
    return this.#status;
  }
}

/** Serves the app on a free loopback port with an engine of that status. */
async function serveHealth(options: { status: EngineStatus }) {
  const app = await createApp(
    loadConfig({ CHAT_ENGINE: "memory" }),
    { engine: new StatusEngine(options.status) },
  );
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, app.handler);
  return {
    port: server.addr.port,
    async [Symbol.asyncDispose]() {
      await app[Symbol.asyncDispose]();
      await server.shutdown();
    },
  };
}

/** The exec-form command of the Dockerfile's HEALTHCHECK. */
async function healthcheckCommand(): Promise<string[]> {
  const dockerfile = await Deno.readTextFile(new URL("../Dockerfile", import.meta.url));
  // Instructions continue over lines ending in a backslash.
  const joined = dockerfile.replace(/\\\r?\n/g, " ");
  const match = joined.match(/^HEALTHCHECK\b.*?\bCMD\s+(\[.*\])\s*$/m);
  assert.ok(match, "the Dockerfile has a HEALTHCHECK in exec form");
  return JSON.parse(match[1]!) as string[];
}

/** Runs the HEALTHCHECK command as Docker would, with `PORT` in its environment. */
async function runHealthcheck(port: number): Promise<number> {
  const [program, ...args] = await healthcheckCommand();
  assert.equal(program, "deno");
  const output = await new Deno.Command(Deno.execPath(), {
    args,
    env: { PORT: String(port) },
    stdout: "null",
    stderr: "null",
  }).output();
  return output.code;
}

Deno.test("/healthz answers 503 with its JSON body while the engine is degraded", async (t) => {
  await t.step("degraded", async () => {
    await using server = await serveHealth({ status: "degraded" });
    const res = await fetch(`http://127.0.0.1:${server.port}/healthz`);
    assert.equal(res.status, 503);
    assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
    const body = await res.json();
    assert.equal(body.status, "degraded");
    assert.deepEqual(body.engine, { name: "memory", status: "degraded" });
    assert.equal(body.connections, 0);
  });
  for (const status of ["ok", "partial"] as const) {
    await t.step(`${status}: 200`, async () => {
      await using server = await serveHealth({ status });
      const res = await fetch(`http://127.0.0.1:${server.port}/healthz`);
      assert.equal(res.status, 200);
      const body = await res.json();
      assert.equal(body.status, status);
      assert.deepEqual(body.engine, { name: "memory", status });
    });
  }
});

Deno.test("the Dockerfile HEALTHCHECK asks the port in PORT and fails on a degraded engine", async (t) => {
  await t.step("exit 0 against a healthy server on a random port", async () => {
    await using server = await serveHealth({ status: "ok" });
    assert.equal(await runHealthcheck(server.port), 0);
  });
  await t.step("exit 1 against a degraded server", async () => {
    await using server = await serveHealth({ status: "degraded" });
    assert.equal(await runHealthcheck(server.port), 1);
  });
  await t.step("exit 1 when nothing listens on PORT", async () => {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    listener.close();
    assert.equal(await runHealthcheck(port), 1);
  });
});
