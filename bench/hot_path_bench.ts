/**
 * Times the ConnectionManager's message path in process (receive, parse,
 * publish on the memory engine, fan out) with sockets that drop their
 * frames: the JavaScript cost per message and per delivery, without the
 * kernel's cost of writing frames. For comparing changes to the hot path.
 *
 * ```sh
 * deno run bench/hot_path_bench.ts [clients=16] [messages=200000] [historyLimit=1000]
 * ```
 *
 * @module
 */

import { type ChatSocket, type Connection, ConnectionManager } from "../chat/connection_manager.ts";

/** Options of {@linkcode measureHotPath}. */
export interface HotPathOptions {
  /** Clients in one room. Default 16. */
  clients?: number;
  /** Messages timed. Default 100000. */
  messages?: number;
  /** Frames the memory engine keeps per room. Default 1000, the server's default. */
  historyLimit?: number;
}

/** Nanoseconds of JavaScript per message and per delivery. */
export interface HotPathResult {
  clients: number;
  nsPerMessage: number;
  nsPerDelivery: number;
}

class CountingSocket implements ChatSocket {
  readyState = 1;
  sent = 0;
  get bufferedAmount(): number {
    return 0;
  }
  send(_data: string): void {
    this.sent++;
  }
  close(): void {
    this.readyState = 3;
  }
}

/** Connects `clients` sockets to one room and times `messages` messages through the manager. */
export async function measureHotPath(options: HotPathOptions = {}): Promise<HotPathResult> {
  const clients = options.clients ?? 16;
  const messages = options.messages ?? 100_000;
  await using manager = new ConnectionManager({
    rateLimitPerS: 1e9,
    rateLimitBurst: 1e9,
    maxConnections: clients + 1,
    maxConnectionsPerIp: clients + 1,
    historyLimit: options.historyLimit ?? 1000,
  });
  await manager.ready();
  const sockets: CountingSocket[] = [];
  const handles: Connection[] = [];
  for (let i = 0; i < clients; i++) {
    const socket = new CountingSocket();
    sockets.push(socket);
    handles.push(manager.connect(socket, { username: `u${i}`, room: "bench" }));
  }
  await new Promise((resolve) => setTimeout(resolve, 0));
  // Prepared up front, so only the manager's work is timed.
  const texts = Array.from(
    { length: 1024 },
    (_, i) => `{"type":"message","message":"${i % clients}|${Date.now()}|${"x".repeat(40)}"}`,
  );
  const run = async (n: number) => {
    for (let i = 0; i < n; i++) {
      handles[i % clients]!.receive(texts[i & 1023]!);
      // Let the publish promises settle now and then, as the event loop would.
      if ((i & 1023) === 1023) await Promise.resolve();
    }
    await new Promise((resolve) => setTimeout(resolve, 0));
  };
  await run(Math.min(20_000, messages)); // warm up the JIT
  const before = sockets.reduce((sum, s) => sum + s.sent, 0);
  const start = performance.now();
  await run(messages);
  const ns = (performance.now() - start) * 1e6;
  const deliveries = sockets.reduce((sum, s) => sum + s.sent, 0) - before;
  return { clients, nsPerMessage: ns / messages, nsPerDelivery: ns / deliveries };
}

if (import.meta.main) {
  const clients = Number(Deno.args[0] ?? 16);
  const messages = Number(Deno.args[1] ?? 200_000);
  const historyLimit = Number(Deno.args[2] ?? 1000);
  for (let i = 0; i < 3; i++) {
    console.log(JSON.stringify(await measureHotPath({ clients, messages, historyLimit })));
  }
}
