/**
 * The scenarios of scale (issue 21): a reconnect storm (`storm-memory`,
 * `storm-kv`, `storm-redis`), joins into one big room (`bigroom`) and
 * 15,000 idle heartbeat connections (`idle15k`), and Redis's side of the
 * redis engine on one Redis and on three shards (`shards`). Each renders a
 * Markdown section and the lines of its targets.
 *
 * @module
 */

import { type IdleChatResult, measureIdleChat } from "./idle_chat.ts";
import type { Measurement } from "./measure.ts";
import { CHURN_ROWS, comparisonTable, count, fixed, idleRows, pairRatios } from "./report.ts";
import { idlePairs, pairs, type Section, serveWithRedis, type SuiteOptions } from "./scenarios.ts";
import { median } from "./stats.ts";
import {
  describeStorm,
  measureStorm,
  STORM_TARGET_MS,
  type StormEngine,
  type StormMeasurement,
  stormTable,
} from "./storm.ts";
import { measureSweep, type SweepResult } from "./sweep_bench.ts";
import { measureShards, SHARD_BENCH, type ShardResult } from "./shard_bench.ts";

/** How big the scale scenarios are. */
export interface ScaleOptions {
  /** Storm: reconnecting clients, their rooms and the messages/s published meanwhile. */
  stormClients: number;
  stormRooms: number;
  stormRate: number;
  /** Storm: the engines to run it on. */
  stormEngines: StormEngine[];
  /** Storm, an experiment: ms over which the first reconnect attempts are spread (0: the page's). */
  stormFirstSpreadMs: number;
  /** Big room: its members, and the clients joining and leaving it in parallel. */
  bigRoomMembers: number;
  bigRoomJoiners: number;
  /** Idle: connections held, and their rooms. */
  idleConnections: number;
  idleRooms: number;
  /** Idle: the chat measured beside them, its messages/s and seconds per window. */
  chatClients: number;
  chatRate: number;
  chatSeconds: number;
  /** Shards: stored publishes per configuration, and users online for presence. */
  shardMessages: number;
  shardPresenceUsers: number;
}

/** The issue's numbers: the full run. */
export const FULL_SCALE: Readonly<ScaleOptions> = Object.freeze<ScaleOptions>({
  stormClients: 5000,
  stormRooms: 50,
  stormRate: 100,
  stormEngines: ["memory", "kv", "redis"],
  stormFirstSpreadMs: 0,
  bigRoomMembers: 5000,
  bigRoomJoiners: 16,
  idleConnections: 15_000,
  idleRooms: 150,
  chatClients: 10,
  chatRate: 50,
  chatSeconds: 10,
  shardMessages: SHARD_BENCH.messages,
  shardPresenceUsers: SHARD_BENCH.presenceUsers,
});

/** A few seconds each: `--quick` and the smoke test. */
export const SMALL_SCALE: Readonly<ScaleOptions> = Object.freeze<ScaleOptions>({
  stormClients: 100,
  stormRooms: 5,
  stormRate: 50,
  stormEngines: ["memory", "kv", "redis"],
  stormFirstSpreadMs: 0,
  bigRoomMembers: 200,
  bigRoomJoiners: 4,
  idleConnections: 300,
  idleRooms: 3,
  chatClients: 4,
  chatRate: 50,
  chatSeconds: 1,
  shardMessages: 3000,
  shardPresenceUsers: 2000,
});

/** The targets of issue 21. */
const TARGETS = Object.freeze({
  idleRssRatio: 1.1,
  idleConnectRatio: 2,
  sweepUs: 1000,
  chatP99Ratio: 1.5,
});

/** A scale scenario runs when `--only` names it or its family (`storm` for `storm-kv`). */
function wanted(options: SuiteOptions, id: string): boolean {
  return options.only === undefined ||
    options.only.some((o) => o === id || id.startsWith(`${o}-`));
}

/** The storm on each engine of `scale.stormEngines`. */
async function storms(
  options: SuiteOptions,
  scale: ScaleOptions,
  sections: Section[],
): Promise<void> {
  const results: StormMeasurement[] = [];
  for (const engine of scale.stormEngines) {
    if (!wanted(options, `storm-${engine}`)) continue;
    options.log(
      `Reconnect storm, ${engine}: ${scale.stormClients} clients in ${scale.stormRooms} rooms`,
    );
    const m = await measureStorm({
      engine,
      clients: scale.stormClients,
      rooms: scale.stormRooms,
      rate: scale.stormRate,
      firstSpreadMs: scale.stormFirstSpreadMs,
      beforeMs: 1000,
      pin: options.pin,
      withRedis: serveWithRedis,
    });
    options.log(describeStorm(m));
    for (const line of m.lostSample) options.log(`    lost: ${line}`);
    if (m.stuckQueues.length > 0) {
      options.log(`    queued bytes (Recv-Q/Send-Q): ${m.stuckQueues.slice(0, 20).join(", ")}`);
    }
    if (m.roomMismatches.length > 0) {
      options.log(`    members on the server/expected: ${m.roomMismatches.join(", ")}`);
    }
    results.push(m);
  }
  if (results.length === 0) return;
  sections.push({
    id: "storm",
    title: `Reconnect storm: ${count(scale.stormClients)} clients in ${scale.stormRooms} rooms ` +
      `dropped at once (1001), back with the page's backoff and \`since\`, ` +
      `${scale.stormRate} messages/s published throughout`,
    markdown: stormTable(results) +
      (scale.stormFirstSpreadMs > 0
        ? `\n\nAn experiment, not the page: each client's first attempt spread over ` +
          `${scale.stormFirstSpreadMs} ms more (\`--storm-first-spread\`).`
        : ""),
    extra: results,
  });
}

/** Joins per second into a room that holds `bigRoomMembers` already. */
async function bigRoom(
  options: SuiteOptions,
  scale: ScaleOptions,
  sections: Section[],
): Promise<void> {
  if (!wanted(options, "bigroom")) return;
  const { bigRoomMembers: members, bigRoomJoiners: joiners } = scale;
  options.log(`Joins into a room of ${members}, ${joiners} clients in parallel`);
  const result = await pairs(options, "bigroom", options.slowRepeats, (kind) => ({
    kind,
    batch: kind === "ours",
    load: { mode: "churn", clients: joiners, churnRoom: "big", members, connectConcurrency: 128 },
    seconds: options.seconds,
    warmupMs: options.warmupS * 1000,
    settleMs: 1000,
  }));
  sections.push({
    id: "bigroom",
    title: `Big room: ${joiners} clients in parallel each joining a room of ${count(members)} ` +
      `members (connect, welcome, close), ours with ROOM_PRESENCE_LIMIT's defaults`,
    markdown: comparisonTable(result, CHURN_ROWS),
    pairs: result,
  });
}

/** What the idle section found besides its pairs. */
interface IdleExtra {
  sweep: SweepResult;
  chat: IdleChatResult;
}

/** The idle section's target lines. */
function idleTargetLines(section: Section, n: number): string[] {
  const p = section.pairs!;
  const { sweep, chat } = section.extra as IdleExtra;
  const ratio = (value: (m: Measurement) => number) => median(pairRatios(p, value));
  const rss = ratio((m) => m.rssLoadedGcKb - m.rssBeforeKb);
  const connect = ratio((m) => m.connectMs);
  const chatRatio = chat.p99WithMs / chat.p99WithoutMs;
  const mark = (ok: boolean) => ok ? "✓" : "✗";
  return [
    `- idle RSS per connection after a full GC at ${count(n)}, ours / baseline: ` +
    `${fixed(2)(rss)} (target ≤ ${TARGETS.idleRssRatio}) ${mark(rss <= TARGETS.idleRssRatio)}`,
    `- time to connect ${count(n)}, ours / baseline: ${fixed(2)(connect)} ` +
    `(target ≤ ${TARGETS.idleConnectRatio}) ${mark(connect <= TARGETS.idleConnectRatio)}`,
    `- heartbeat sweep of ${count(n)}: ${fixed(0)(sweep.pingSweepUs)} µs pinging all, ` +
    `${fixed(0)(sweep.idleSweepUs)} µs with nothing due (target < ${TARGETS.sweepUs} µs) ` +
    mark(sweep.pingSweepUs < TARGETS.sweepUs),
    `- chat p99 with ${count(n)} idle / without: ${fixed(2)(chat.p99WithMs)} / ` +
    `${fixed(2)(chat.p99WithoutMs)} ms = ${
      fixed(2)(chatRatio)
    } (target ≤ ${TARGETS.chatP99Ratio}) ` +
    mark(chatRatio <= TARGETS.chatP99Ratio),
  ];
}

/** Many idle heartbeat connections: memory and connect time against the baseline, sweep, chat. */
async function idleLarge(
  options: SuiteOptions,
  scale: ScaleOptions,
  sections: Section[],
): Promise<void> {
  if (!wanted(options, "idle15k")) return;
  const { idleConnections: n, idleRooms: rooms } = scale;
  options.log(`${n} idle connections in ${rooms} rooms`);
  // The server's own ping interval: at one ping a second (the idle scenario's), 15,000
  // pings and pongs a second keep server and load busy and connecting takes minutes.
  const result = await idlePairs(options, { id: "idle15k", n, rooms, heartbeatMs: 10_000 });
  const sweep = await measureSweep({ connections: n, roomSize: Math.ceil(n / rooms) });
  options.log(`  sweep of ${n}: ${fixed(0)(sweep.pingSweepUs)} µs pinging all`);
  const chat = await measureIdleChat({
    idle: n,
    rooms,
    chatClients: scale.chatClients,
    rate: scale.chatRate,
    seconds: scale.chatSeconds,
    pin: options.pin,
    log: options.log,
  });
  const section: Section = {
    id: "idle15k",
    title: `${count(n)} idle connections, heartbeat route (a ping every 10 s), ${rooms} rooms`,
    markdown: "",
    pairs: result,
    extra: { sweep, chat } satisfies IdleExtra,
  };
  section.markdown = [
    comparisonTable(result, idleRows(n)),
    "",
    `Chat beside them: ${scale.chatClients} users in one room sending ${scale.chatRate} ` +
    `messages/s, the server's own heartbeat (a ping every 10 s); p99 of every delivery in ` +
    `${chat.without.length} windows of ${scale.chatSeconds} s alone (before and after) and ` +
    `${chat.with.length} with the idle connections. Targets: see the target lines.`,
  ].join("\n");
  sections.push(section);
}

/** Redis CPU per stored message on one Redis and on three, and per presence entry. */
async function shards(
  options: SuiteOptions,
  scale: ScaleOptions,
  sections: Section[],
): Promise<void> {
  if (!wanted(options, "shards")) return;
  const messages = scale.shardMessages;
  options.log(`Redis shards: ${count(messages)} stored messages on 1 and 3 Redis servers`);
  let result: ShardResult;
  try {
    result = await measureShards({
      ...SHARD_BENCH,
      messages,
      presenceUsers: scale.shardPresenceUsers,
      log: options.log,
    });
  } catch (error) {
    // Like an engine's row: the rest of the run is still worth its report.
    const reason = String(error).split("\n")[0]!;
    options.log(`  shards: ${reason}`);
    sections.push({ id: "shards", title: "Redis shards", markdown: `Failed: ${reason}` });
    return;
  }
  sections.push({
    id: "shards",
    title: `Redis shards: ${count(messages)} stored messages of ${SHARD_BENCH.bytes} bytes ` +
      `to ${SHARD_BENCH.channels} channels, ${SHARD_BENCH.inFlight} in flight, from one process`,
    markdown: shardTable(result),
    extra: result,
  });
}

/** The shards section's table and lines. */
function shardTable(result: ShardResult): string {
  const us = fixed(1);
  return [
    "| Redis servers | processes subscribed | messages/s | Redis CPU per message | of it each shard |",
    "| ---: | ---: | ---: | ---: | --- |",
    ...result.rows.map((r) =>
      `| ${r.shards} | ${r.subscribers} | ${count(r.messagesPerS)} | ${us(r.redisUs)} µs | ` +
      `${r.shardUs.map((u) => `${us(u)} µs`).join(" / ")} |`
    ),
    "",
    `Messages/s is this one publishing process's limit, not Redis's. A presence refresh: ` +
    `${us(result.presenceUs)} µs of Redis CPU per entry (${count(result.presenceEntries)} ` +
    `entries: users online and their rooms). Routing a call to its shard of three: ` +
    `${fixed(2)(result.routeUs)} µs of the chat process.`,
  ].join("\n");
}

/** The target lines of the scale sections that ran. */
export function scaleTargets(sections: readonly Section[]): string[] {
  const lines: string[] = [];
  const storm = sections.find((s) => s.id === "storm");
  for (const m of (storm?.extra ?? []) as StormMeasurement[]) {
    const ok = m.notBack === 0 && m.allBackMs <= STORM_TARGET_MS;
    lines.push(
      `- storm ${m.engine}: all ${m.clients} back in ${fixed(0)(m.allBackMs)} ms ` +
        `(target ≤ ${STORM_TARGET_MS / 1000} s) ${ok ? "✓" : "✗"}, welcome p99 ` +
        `${fixed(0)(m.welcomeP99Ms)} ms, lost ${m.lost}, duplicated ${m.duplicated} ` +
        `${m.lost === 0 && m.duplicated === 0 ? "✓" : "✗"}`,
    );
  }
  const idle = sections.find((s) => s.id === "idle15k");
  if (idle !== undefined) {
    lines.push(...idleTargetLines(idle, (idle.extra as IdleExtra).chat.idle));
  }
  return lines;
}

/** Runs the scale scenarios in order, adding their sections. */
export async function runScaleSuite(
  options: SuiteOptions,
  scale: ScaleOptions,
  sections: Section[],
): Promise<void> {
  await bigRoom(options, scale, sections);
  await storms(options, scale, sections);
  await idleLarge(options, scale, sections);
  await shards(options, scale, sections);
}
