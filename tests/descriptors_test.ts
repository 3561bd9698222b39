import assert from "node:assert/strict";
import { isOutOfDescriptors, serveForever, type ServeFunction } from "../listener.ts";
import { startServer } from "./helpers/app_server.ts";
import { type ServerProcess, spawnServer } from "./helpers/server_process.ts";
import { eventually } from "./helpers/eventually.ts";
import { FakeClock, FakeScheduler, settle } from "./helpers/fakes.ts";
import { TestClient } from "./helpers/ws_client.ts";

const START_LIMIT_MS = 15_000;
const LINUX_ONLY = Deno.build.os !== "linux";

/** main.ts under `ulimit` arguments, and whether it has exited. */
async function spawnLimited(limit: string): Promise<ServerProcess & { exited(): boolean }> {
  const server = await spawnServer({
    args: ["run", "--allow-net", "--allow-env", "--allow-read", "main.ts"],
    env: { CHAT_ENGINE: "memory", PORT: "0", HOST: "127.0.0.1" },
    timeoutMs: START_LIMIT_MS,
    ulimit: limit,
  });
  let exited = false;
  server.status.then(() => exited = true);
  return Object.assign(server, { exited: () => exited });
}

/** The soft and hard "Max open files" of a process, from /proc. */
function openFileLimits(pid: number | "self"): { soft: number; hard: number } {
  const text = Deno.readTextFileSync(`/proc/${pid}/limits`);
  const match = text.match(/^Max open files\s+(\d+)\s+(\d+)/m);
  if (match === null) throw new Error(`No open files limit in /proc/${pid}/limits: ${text}`);
  return { soft: Number(match[1]), hard: Number(match[2]) };
}

/** Opens up to `count` idle TCP connections; refused ones (listener down) are counted. */
async function openIdle(
  port: number,
  count: number,
): Promise<{ conns: Deno.Conn[]; refused: number }> {
  const conns: Deno.Conn[] = [];
  let refused = 0;
  for (let i = 0; i < count; i++) {
    try {
      conns.push(await Deno.connect({ hostname: "127.0.0.1", port }));
    } catch {
      refused++;
    }
  }
  return { conns, refused };
}

async function status(url: string): Promise<number | undefined> {
  try {
    const response = await fetch(url);
    await response.body?.cancel();
    return response.status;
  } catch {
    return undefined;
  }
}

Deno.test({
  name: "Deno raises the soft descriptor limit to the hard limit at start",
  ignore: LINUX_ONLY,
  async fn() {
    await using server = await spawnLimited("-Sn 256");
    const limits = openFileLimits(server.pid);
    assert.equal(limits.hard, openFileLimits("self").hard, "bash keeps the hard limit");
    assert.equal(limits.soft, limits.hard, `soft limit left at ${limits.soft}`);
  },
});

Deno.test({
  name: "out of descriptors the server keeps running, keeps its sockets and serves again",
  ignore: LINUX_ONLY,
  async fn() {
    await using server = await spawnLimited("-n 256");
    const ws = (path: string) => `ws://127.0.0.1:${server.port}${path}`;
    const http = (path: string) => `http://127.0.0.1:${server.port}${path}`;
    await using alice = await TestClient.connect(ws("/ws/chat/alice"));
    await alice.next("welcome");

    const { conns, refused } = await openIdle(server.port, 400);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.ok(!server.exited(), `process exited:\n${server.lines.join("\n")}`);
    assert.ok(conns.length < 400, `all 400 connections were accepted (${refused} refused)`);
    for (const conn of conns) conn.close();

    await eventually("/healthz answers 200", async () => (await status(http("/healthz"))) === 200);
    await using bob = await TestClient.connect(ws("/ws/chat/bob"));
    await bob.next("welcome");
    alice.sendJson({ type: "message", message: "still here" });
    await bob.next((f) => f.type === "message" && f.message === "still here");
    bob.sendJson({ type: "message", message: "so am I" });
    await alice.next((f) => f.type === "message" && f.message === "so am I");

    assert.ok(
      server.lines.some((l) => l.includes('"event":"accept_failed"')),
      "no accept_failed line",
    );
    const response = await fetch(http("/metrics"));
    const metrics = await response.text();
    assert.equal(response.status, 200, metrics);
    const failures = Number(metrics.match(/^chat_accept_failures_total (\d+)$/m)?.[1]);
    assert.ok(failures >= 1, `chat_accept_failures_total is ${failures}`);
    assert.ok(!server.exited(), server.lines.join("\n"));
  },
});

Deno.test(
  "Deno.serve keeps a connection with an incomplete request open: the proxy's client_header_timeout must close it",
  async () => {
    await using server = await startServer();
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    try {
      const encoder = new TextEncoder();
      await conn.write(encoder.encode("GET /healthz HTTP/1.1\r\nHost: x\r\n"));
      await new Promise((resolve) => setTimeout(resolve, 2000));
      // Still open after 2 s: the rest of the head gets an answer.
      await conn.write(encoder.encode("Connection: close\r\n\r\n"));
      const buffer = new Uint8Array(1024);
      const n = await conn.read(buffer);
      assert.ok(n !== null, "the server closed the connection");
      const text = new TextDecoder().decode(buffer.subarray(0, n));
      assert.match(text, /^HTTP\/1\.1 200 /);
    } finally {
      conn.close();
    }
  },
);

/** Stands in for Deno.serve: records binds, throws queued bind errors, lets a test end accept loops. */
function fakeServe() {
  const binds: Deno.ServeTcpOptions[] = [];
  const loops: PromiseWithResolvers<void>[] = [];
  const bindErrors: Error[] = [];
  const serve: ServeFunction = (options) => {
    binds.push(options);
    const error = bindErrors.shift();
    if (error !== undefined) throw error;
    const loop = Promise.withResolvers<void>();
    loops.push(loop);
    const addr: Deno.NetAddr = {
      transport: "tcp",
      hostname: "127.0.0.1",
      port: options.port || 4321,
    };
    const server = {
      addr,
      finished: loop.promise,
      shutdown: () => Promise.resolve(loop.resolve()),
    };
    return server as unknown as Deno.HttpServer<Deno.NetAddr>;
  };
  return { serve, binds, loops, bindErrors };
}

const emfile = () =>
  Object.assign(new Error("Too many open files (os error 24)"), { code: "EMFILE" });

Deno.test("the listener binds the same port again after a failed accept loop, retrying EMFILE", async () => {
  const scheduler = new FakeScheduler(new FakeClock());
  const fake = fakeServe();
  const errors: string[] = [];
  const listens: number[] = [];
  const listener = await serveForever({
    hostname: "127.0.0.1",
    port: 0,
    handler: () => new Response(),
    onListen: (addr) => listens.push(addr.port),
    onError: (_, stage) => errors.push(stage),
    scheduler,
    serve: fake.serve,
  });
  assert.equal(listener.addr.port, 4321);
  fake.loops[0]!.reject(new Error("Http: Error: Too many open files (os error 24)"));
  await settle();
  assert.deepEqual(errors, ["accept"]);
  scheduler.advance(99);
  await settle();
  assert.equal(fake.binds.length, 1, "bound again before the backoff");
  fake.bindErrors.push(emfile());
  scheduler.advance(1);
  await settle();
  assert.deepEqual(errors, ["accept", "bind"]);
  scheduler.advance(100);
  await settle();
  assert.deepEqual(fake.binds.map((b) => b.port), [0, 4321, 4321], "the port picked first is kept");
  assert.deepEqual(listens, [4321], "onListen reports the first bind only");

  // Shutting down during a backoff cancels it.
  fake.loops[1]!.reject(new Error("Http: Error: Too many open files (os error 24)"));
  await settle();
  await listener.shutdown();
  await listener.finished;
  assert.equal(scheduler.pending, 0);
  assert.equal(fake.binds.length, 3);
});

Deno.test("the listener gives up when binding again fails for anything but descriptors", async () => {
  const scheduler = new FakeScheduler(new FakeClock());
  const fake = fakeServe();
  const listener = await serveForever({
    hostname: "127.0.0.1",
    port: 8000,
    handler: () => new Response(),
    scheduler,
    serve: fake.serve,
  });
  fake.bindErrors.push(new Deno.errors.AddrInUse("Address in use"));
  fake.loops[0]!.reject(new Error("Http: Error: Too many open files (os error 24)"));
  await settle();
  scheduler.advance(100);
  await assert.rejects(listener.finished, Deno.errors.AddrInUse);
  await assert.rejects(
    serveForever({ hostname: "127.0.0.1", port: 0, handler: () => new Response(), backoffMs: -1 }),
    { name: "RangeError", message: "Invalid listener backoff: -1" },
  );
  assert.ok(isOutOfDescriptors(emfile()));
  assert.ok(isOutOfDescriptors(Object.assign(new Error("x"), { code: "ENFILE" })));
  assert.ok(!isOutOfDescriptors(new Deno.errors.AddrInUse("Address in use")));
});
