/**
 * A small chat's latency with and without many idle heartbeat connections
 * on the same server: windows of the chat alone, then with the idle
 * connections, then alone again after they closed (so a trend over time,
 * the JIT warming, does not pass for their effect).
 *
 * @module
 */

import type { LoadConfig } from "./load.ts";
import { quiet } from "./measure.ts";
import { type LoadProcess, startLoad, startServer } from "./processes.ts";
import { type HistogramJson, pooledQuantile } from "./stats.ts";

/** Options of {@linkcode measureIdleChat}. */
export interface IdleChatOptions {
  /** Idle heartbeat connections. */
  idle: number;
  /** Rooms they are spread over, `idle0`, `idle1`, .... */
  rooms: number;
  /** Chat users, all in one room. */
  chatClients: number;
  /** Messages per second the chat sends, all users together. */
  rate: number;
  /** Seconds of each measured window; at least the heartbeat interval (10 s) to hold a ping round. */
  seconds: number;
  /** Pin the server to CPU 0 and the loads to CPU 1. */
  pin: boolean;
  /** More environment for our server, for experiments (a heartbeat setting, V8 flags). Default: none. */
  serverEnv?: Record<string, string>;
  /** Progress lines. */
  log: (line: string) => void;
}

/** The chat's latency in each condition, every delivery of its windows. */
export interface IdleChatResult {
  idle: number;
  without: HistogramJson[];
  with: HistogramJson[];
  p99WithoutMs: number;
  p99WithMs: number;
  /** Milliseconds to connect the idle clients while the chat ran. */
  idleConnectMs: number;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** One measured window of the chat: its deliveries' latencies. */
async function chatWindow(chat: LoadProcess, seconds: number): Promise<HistogramJson> {
  await chat.send("run");
  await sleep(300);
  await chat.send("measure");
  await sleep(seconds * 1000);
  await chat.send("pause");
  return (await chat.nextResult()).latency;
}

/** The idle clients' load: the heartbeat route, answering pings. */
function idleLoad(base: string, o: IdleChatOptions): LoadConfig {
  return {
    base,
    path: "/ws/chat/{name}/heartbeat?room={room}",
    mode: "idle",
    clients: o.idle,
    rooms: o.rooms,
    roomPrefix: "idle",
    namePrefix: "i",
    pong: true,
    ready: "welcome",
    connectConcurrency: 128,
  };
}

/** Measures the chat alone, with `idle` idle connections, and alone again. */
export async function measureIdleChat(o: IdleChatOptions): Promise<IdleChatResult> {
  const cpus = o.pin ? "1" : undefined;
  // The server's own heartbeat settings (a ping every 10 s): what idle pages get.
  await using server = await startServer({
    kind: "ours",
    cpus: o.pin ? "0" : undefined,
    env: o.serverEnv,
  });
  await using chat = startLoad({
    base: server.base,
    path: "/ws/chat/{name}?room={room}&batch=1",
    batched: true,
    mode: "paced",
    clients: o.chatClients,
    rooms: 1,
    roomPrefix: "chat",
    namePrefix: "c",
    rate: o.rate,
    bytes: 64,
    ready: "welcome",
  }, { cpus });
  await chat.ready;
  await chatWindow(chat, Math.min(1, o.seconds)); // warms the JIT up
  const without = [await chatWindow(chat, o.seconds)];
  o.log(`  idle chat: alone, p99 ${pooledQuantile(without, 0.99).toFixed(2)} ms`);
  let idleConnectMs: number;
  const withIdle: HistogramJson[] = [];
  {
    // The idle clients stand in for 15,000 devices elsewhere: on the chat load's core they must
    // not delay it, or the chat's p99 measures the load generators instead of the server.
    await using idle = startLoad(idleLoad(server.base, o), { cpus, niceness: 19 });
    idleConnectMs = (await idle.ready).connectMs;
    await sleep(1000);
    for (let i = 0; i < 2; i++) withIdle.push(await chatWindow(chat, o.seconds));
    o.log(`  idle chat: with ${o.idle} idle, p99 ${pooledQuantile(withIdle, 0.99).toFixed(2)} ms`);
  }
  // The idle clients' sockets close with their process: let the server see them go.
  await sleep(200);
  await quiet(server);
  without.push(await chatWindow(chat, o.seconds));
  return {
    idle: o.idle,
    without,
    with: withIdle,
    p99WithoutMs: pooledQuantile(without, 0.99),
    p99WithMs: pooledQuantile(withIdle, 0.99),
    idleConnectMs,
  };
}
