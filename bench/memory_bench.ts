/**
 * Measures the JS heap the ConnectionManager (with the memory engine) keeps
 * per connection, in process with sockets that drop their frames. Needs
 * `gc()`:
 *
 * ```sh
 * deno run --v8-flags=--expose-gc bench/memory_bench.ts [connections=5000]
 * ```
 *
 * @module
 */

import { type Connection, ConnectionManager } from "../chat/connection_manager.ts";
import { NullSocket } from "./null_socket.ts";

/** Bytes of JS heap kept per connection (heartbeat route, 10 per room), after a full GC. */
export async function heapPerConnection(connections = 5000): Promise<number> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error("gc() not exposed: run with --v8-flags=--expose-gc");
  await using manager = new ConnectionManager({
    maxConnections: connections + 1,
    maxConnectionsPerIp: connections + 1,
  });
  await manager.ready();
  gc();
  const before = Deno.memoryUsage().heapUsed;
  const handles: Connection[] = [];
  for (let i = 0; i < connections; i++) {
    handles.push(manager.connect(new NullSocket(), {
      username: `u${i}`,
      room: `r${Math.floor(i / 10)}`,
      heartbeat: true,
      remoteAddr: "127.0.0.1",
    }));
  }
  // Let the welcome frames (history reads) go out.
  await new Promise((resolve) => setTimeout(resolve, 0));
  if (manager.connectionCount !== connections) {
    throw new Error(`Connections refused: ${connections - manager.connectionCount}`);
  }
  gc();
  const after = Deno.memoryUsage().heapUsed;
  // The routes keep the handles; so does this benchmark until here.
  if (handles.length !== connections) throw new Error("Lost handles");
  return (after - before) / connections;
}

if (import.meta.main) {
  const bytes = await heapPerConnection(Number(Deno.args[0] ?? 5000));
  console.log(JSON.stringify({ heapBytesPerConnection: Math.round(bytes) }));
}
