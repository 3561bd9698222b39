/**
 * The CPU seconds the processes of a measured window use: the server, the
 * helpers that serve with it (redis-server) and the load generators.
 *
 * @module
 */

import { cpuSeconds, type LoadProcess, type ServerProcess } from "./processes.ts";

/** The processes whose CPU a window counts. */
export interface CpuSources {
  server: ServerProcess;
  loads: readonly LoadProcess[];
  /** Processes that serve with the server: their CPU counts as the server's. */
  helpers: readonly number[];
}

/** CPU seconds the processes of a window have used, read at one moment. */
export interface CpuReading {
  /** Each load process's, in the order of `loads`; NaN when unreadable. */
  loads: number[];
  /** The helpers' in all; an unreadable helper counts 0. */
  helpers: number;
  server: number;
}

/** What a window took, in CPU seconds, from its start and end readings. */
export interface CpuUsed {
  /** The server's, the helpers' included. */
  cpuS: number;
  helperS: number;
  /** All load processes'. */
  loadCpuS: number;
}

/**
 * Reads the CPU of the loads, the helpers and the server, in that order:
 * the order the window always read them in, so the server's reading is the
 * one nearest the window's edge.
 */
export async function readCpu({ server, loads, helpers }: CpuSources): Promise<CpuReading> {
  const loadCpu = await Promise.all(loads.map((l) => cpuSeconds(l.pid).catch(() => NaN)));
  let helperCpu = 0;
  for (const pid of helpers) helperCpu += await cpuSeconds(pid).catch(() => 0);
  return { loads: loadCpu, helpers: helperCpu, server: await server.cpuSeconds() };
}

/** The CPU seconds used between two readings of the same sources. */
export function cpuUsed(start: CpuReading, end: CpuReading): CpuUsed {
  const helperS = end.helpers - start.helpers;
  const cpuS = end.server - start.server + helperS;
  let loadCpuS = 0;
  for (let i = 0; i < end.loads.length; i++) loadCpuS += end.loads[i]! - start.loads[i]!;
  return { cpuS, helperS, loadCpuS };
}
