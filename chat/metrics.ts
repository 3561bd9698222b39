/**
 * Counters, gauges and one latency histogram, rendered in the Prometheus
 * text format. Plain number fields so the hot path pays an increment only.
 *
 * @module
 */

import type { EngineStats } from "./engines/engine.ts";
import { CloseCode } from "./protocol.ts";
import { VERSION } from "./version.ts";

// Seconds from receiving a message to handing it to the last local recipient.
const FANOUT_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1];

/**
 * Close codes that get their own `chat_closes_total` series: the standard
 * 1000–1011 and the server's own table ({@linkcode CloseCode}). Clients may
 * close with any code from 3000 to 4999; those all count as `other`, so a
 * client cannot grow the number of series.
 */
export const DOCUMENTED_CLOSE_CODES: ReadonlySet<number> = new Set([
  ...Array.from({ length: 12 }, (_, i) => 1000 + i),
  ...Object.values(CloseCode),
]);

/** The label of a close code: the code when documented, otherwise `other`. */
export function closeCodeLabel(code: number): number | "other" {
  return DOCUMENTED_CLOSE_CODES.has(code) ? code : "other";
}

/** Live values read when rendering. */
export interface Gauges {
  /** Open WebSocket connections (`chat_connections`). */
  connections: number;
  /** Rooms with at least one local member (`chat_rooms`). */
  rooms: number;
  /** The engine's stored bytes, evictions and expired channels. */
  history: EngineStats;
  /** The process's memory and event loop; without it their families are left out. */
  process?: ProcessGauges;
}

/** The process as /metrics shows it, read when rendering. */
export interface ProcessGauges {
  /** Resident set size (`process_resident_memory_bytes`), `Deno.memoryUsage().rss`. */
  residentBytes: number;
  /** V8 heap in use (`deno_heap_used_bytes`), `Deno.memoryUsage().heapUsed`. */
  heapUsedBytes: number;
  /** The latest event loop lag probe (`chat_event_loop_lag_seconds`). */
  eventLoopLagSeconds: number;
}

/** The labels of `chat_build_info`: this package's version and the runtime's. */
export const BUILD_INFO: Readonly<{ version: string; deno: string }> = Object.freeze({
  version: VERSION,
  deno: Deno.version.deno,
});

/** The server's metrics. */
export class Metrics {
  /** Text frames received. */
  framesIn = 0;
  /** Frames sent. */
  framesOut = 0;
  /** UTF-8 bytes received in text frames. */
  bytesIn = 0;
  /** UTF-8 bytes sent. */
  bytesOut = 0;
  /** Room and private messages fanned out. */
  broadcasts = 0;
  /** Copies of broadcast frames handed to sockets. */
  deliveries = 0;
  /** Frames dropped by the rate limit. */
  rateLimited = 0;
  /** Sockets closed for a full send buffer. */
  slowConsumerCloses = 0;
  /** Sockets closed for a silent heartbeat. */
  heartbeatTimeouts = 0;
  /** Connections accepted since start. */
  connectionsTotal = 0;
  /** Times the listener stopped accepting (out of descriptors) and was started again. */
  acceptFailures = 0;
  /** Handshakes refused before upgrade, by HTTP status. */
  readonly handshakesRefused: Map<number, number> = new Map();
  /** Error frames sent, by code. */
  readonly errors: Map<string, number> = new Map();
  /** Closes, by documented close code or `other` (see {@linkcode closeCodeLabel}). */
  readonly closes: Map<number | "other", number> = new Map();
  #buckets = new Array<number>(FANOUT_BUCKETS.length).fill(0);
  #fanoutCount = 0;
  #fanoutSum = 0;

  /** Counts one error frame. */
  error(code: string): void {
    this.errors.set(code, (this.errors.get(code) ?? 0) + 1);
  }

  /** Counts one close under its label. */
  close(code: number): void {
    const label = closeCodeLabel(code);
    this.closes.set(label, (this.closes.get(label) ?? 0) + 1);
  }

  /** Counts one refused handshake. */
  refused(status: number): void {
    this.handshakesRefused.set(status, (this.handshakesRefused.get(status) ?? 0) + 1);
  }

  /** Records one fan-out duration in seconds. */
  observeFanout(seconds: number): void {
    this.#fanoutCount++;
    this.#fanoutSum += seconds;
    for (let i = 0; i < FANOUT_BUCKETS.length; i++) {
      if (seconds <= FANOUT_BUCKETS[i]!) {
        this.#buckets[i]!++;
        return;
      }
    }
  }

  /** Renders every metric in the Prometheus text exposition format. */
  render(gauges: Gauges): string {
    const lines: string[] = [];
    for (
      const [name, type, help, samples] of [
        ...this.#families(gauges),
        ...resourceFamilies(gauges, this.acceptFailures),
        ...processFamilies(gauges.process),
      ]
    ) {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [labels, value] of samples) lines.push(`${name}${labels} ${value}`);
    }
    lines.push(...this.#fanoutLines());
    return lines.join("\n") + "\n";
  }

  /** Every counter and gauge as data: name, type, help and its samples. */
  #families(gauges: Gauges): Family[] {
    const one = (value: number): [string, number][] => [["", value]];
    const labelled = (label: string, map: Map<string | number, number>): [string, number][] =>
      [...map].map(([key, value]) => [`{${label}="${key}"}`, value]);
    return [
      ["chat_connections", "gauge", "Open WebSocket connections.", one(gauges.connections)],
      ["chat_rooms", "gauge", "Rooms with at least one local member.", one(gauges.rooms)],
      ["chat_connections_total", "counter", "Connections accepted.", one(this.connectionsTotal)],
      ["chat_frames_in_total", "counter", "Frames received.", one(this.framesIn)],
      ["chat_frames_out_total", "counter", "Frames sent.", one(this.framesOut)],
      ["chat_bytes_in_total", "counter", "Bytes received.", one(this.bytesIn)],
      ["chat_bytes_out_total", "counter", "Bytes sent.", one(this.bytesOut)],
      ["chat_messages_broadcast_total", "counter", "Messages fanned out.", one(this.broadcasts)],
      [
        "chat_deliveries_total",
        "counter",
        "Copies of messages handed to sockets.",
        one(this.deliveries),
      ],
      [
        "chat_errors_total",
        "counter",
        "Error frames sent, by code.",
        labelled("code", this.errors),
      ],
      [
        "chat_closes_total",
        "counter",
        "Connections closed, by close code.",
        labelled("code", this.closes),
      ],
      [
        "chat_handshakes_refused_total",
        "counter",
        "Handshakes refused before the upgrade, by HTTP status.",
        labelled("status", this.handshakesRefused),
      ],
      [
        "chat_rate_limited_total",
        "counter",
        "Frames dropped by the rate limit.",
        one(this.rateLimited),
      ],
      [
        "chat_slow_consumer_closes_total",
        "counter",
        "Slow consumers closed.",
        one(this.slowConsumerCloses),
      ],
      [
        "chat_heartbeat_timeouts_total",
        "counter",
        "Heartbeat timeouts.",
        one(this.heartbeatTimeouts),
      ],
    ];
  }

  /** The fan-out histogram: cumulative buckets, sum and count. */
  #fanoutLines(): string[] {
    const lines = [
      "# HELP chat_fanout_seconds Time from receiving a message to handing it to the last recipient.",
      "# TYPE chat_fanout_seconds histogram",
    ];
    let cumulative = 0;
    FANOUT_BUCKETS.forEach((le, i) => {
      cumulative += this.#buckets[i]!;
      lines.push(`chat_fanout_seconds_bucket{le="${le}"} ${cumulative}`);
    });
    lines.push(
      `chat_fanout_seconds_bucket{le="+Inf"} ${this.#fanoutCount}`,
      `chat_fanout_seconds_sum ${this.#fanoutSum}`,
      `chat_fanout_seconds_count ${this.#fanoutCount}`,
    );
    return lines;
  }
}

/** A metric family as data: name, type, help and its samples. */
type Family = [string, string, string, [string, number][]];

/** The families of bounded resources: the engine's store and the listener. */
function resourceFamilies(gauges: Gauges, acceptFailures: number): Family[] {
  const { storedBytes, evictions, expiredChannels } = gauges.history;
  return [
    [
      "chat_accept_failures_total",
      "counter",
      "Times the listener failed to accept (out of descriptors) and was restarted.",
      [["", acceptFailures]],
    ],
    [
      "chat_history_stored_bytes",
      "gauge",
      "Bytes of stored history in the engine's store, as last seen.",
      [["", storedBytes]],
    ],
    [
      "chat_history_evictions_total",
      "counter",
      "Publications evicted to keep within HISTORY_MAX_BYTES.",
      [["", evictions]],
    ],
    [
      "chat_rooms_expired_total",
      "counter",
      "Channels deleted after ROOM_TTL_S without a message.",
      [["", expiredChannels]],
    ],
  ];
}

/** The families of the process: memory, event loop lag and the build. */
function processFamilies(process: ProcessGauges | undefined): Family[] {
  const { version, deno } = BUILD_INFO;
  const build: Family = [
    "chat_build_info",
    "gauge",
    "The package and Deno versions of this server; always 1.",
    [[`{version="${version}",deno="${deno}"}`, 1]],
  ];
  if (process === undefined) return [build];
  return [
    [
      "process_resident_memory_bytes",
      "gauge",
      "Resident memory size in bytes.",
      [["", process.residentBytes]],
    ],
    [
      "deno_heap_used_bytes",
      "gauge",
      "V8 heap in use in bytes.",
      [["", process.heapUsedBytes]],
    ],
    [
      "chat_event_loop_lag_seconds",
      "gauge",
      "How late the latest timer probe (one a second) fired, in seconds.",
      [["", process.eventLoopLagSeconds]],
    ],
    build,
  ];
}
