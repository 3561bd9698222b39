/**
 * Times one heartbeat sweep of the ConnectionManager in process, with
 * sockets that drop what they are sent: the JavaScript cost of the sweep,
 * without the kernel's cost of writing pings.
 *
 * ```sh
 * deno run bench/sweep_bench.ts [connections=5000]
 * ```
 *
 * @module
 */

import type { Scheduler } from "../chat/clock.ts";
import { ConnectionManager } from "../chat/connection_manager.ts";
import { NullSocket } from "./null_socket.ts";

/** Options of {@linkcode measureSweep}. */
export interface SweepOptions {
  /** Heartbeat connections. Default 5000. */
  connections?: number;
  /** Connections per room. Default 10. */
  roomSize?: number;
  /** Sweeps timed per case. Default 200. */
  iterations?: number;
}

/** Microseconds per sweep. */
export interface SweepResult {
  connections: number;
  /** A sweep with nothing due: the check every tick pays. */
  idleSweepUs: number;
  /** A sweep that pings every connection: once per interval. */
  pingSweepUs: number;
}

const INTERVAL_MS = 10_000;

// Timers never fire: the benchmark calls sweep() itself.
const manualScheduler: Scheduler = {
  setInterval: () => 1,
  clearInterval: () => {},
  setTimeout: () => 1,
  clearTimeout: () => {},
};

/** Connects fake heartbeat sockets and times `sweep()` with nothing due and with every ping due. */
export async function measureSweep(options: SweepOptions = {}): Promise<SweepResult> {
  const connections = options.connections ?? 5000;
  const roomSize = options.roomSize ?? 10;
  const iterations = options.iterations ?? 200;
  let now = Date.now();
  await using manager = new ConnectionManager({
    clock: { now: () => now },
    scheduler: manualScheduler,
    heartbeatIntervalMs: INTERVAL_MS,
    // Never time out: every sweep finds every connection alive.
    heartbeatTimeoutMs: 1e12,
    maxConnections: connections + 1,
    maxConnectionsPerIp: connections + 1,
  });
  await manager.ready();
  for (let i = 0; i < connections; i++) {
    manager.connect(new NullSocket(), {
      username: `u${i}`,
      room: `r${Math.floor(i / roomSize)}`,
      heartbeat: true,
    });
  }
  // Let the welcome frames (history reads) settle.
  await new Promise((resolve) => setTimeout(resolve, 0));
  if (manager.connectionCount !== connections) {
    throw new Error(`Connections refused: ${connections - manager.connectionCount}`);
  }
  const time = (advanceMs: number) => {
    const start = performance.now();
    for (let i = 0; i < iterations; i++) {
      now += advanceMs;
      manager.sweep();
    }
    return (performance.now() - start) * 1000 / iterations;
  };
  time(1); // warm up the JIT
  const idleSweepUs = time(1);
  const pingSweepUs = time(INTERVAL_MS);
  return { connections, idleSweepUs, pingSweepUs };
}

if (import.meta.main) {
  console.log(JSON.stringify(await measureSweep({ connections: Number(Deno.args[0] ?? 5000) })));
}
