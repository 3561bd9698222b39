/**
 * The load of the `storm` scenario: clients spread over rooms that, when the
 * server drops them, reconnect as the chat page does (the delays of
 * `client/backoff.ts`, `?since=` and `?epoch=` of the last id seen), and a
 * sender per room that keeps publishing throughout. Every client checks
 * each sender's sequence numbers: a number a sender saw stored and a client
 * never got is lost, one a client got twice is duplicated.
 *
 * Speaks load.ts's protocol: prints `{"event":"ready"}` once every client
 * has its welcome; `run` starts the senders; `pause` or `stop` waits until every
 * client was dropped and is back (or `maxWaitMs`), lets the senders go on
 * for `afterMs`, stops them, waits for the last messages and prints
 * `{"event":"result",...}` ({@linkcode StormResult}); after `pause` the
 * clients stay connected until stdin closes.
 *
 * @module
 */

import { reconnectDelay } from "../client/backoff.ts";
import { lines } from "./lines.ts";
import { wallNow } from "./load.ts";
import { LatencyHistogram } from "./stats.ts";

/** The configuration of a storm load process (its only argument, as JSON). */
export interface StormConfig {
  /** The server's base URL, e.g. `ws://127.0.0.1:8000`. */
  base: string;
  /** Reconnecting clients. */
  clients: number;
  /** Rooms they are spread over, `storm0`, `storm1`, ..., one sender each. */
  rooms: number;
  /** Messages per second all senders publish together. Default 100. */
  rate?: number;
  /** Names start with this, unique across runs on a shared engine. */
  namePrefix: string;
  /** Handshakes in flight while connecting at first. Default 128. */
  connectConcurrency?: number;
  /** Longest wait for every client to be back after `stop`. Default 60,000. */
  maxWaitMs?: number;
  /** Publishing after every client is back. Default 1000. */
  afterMs?: number;
  /** A sender's reconnect delay: it is the fixture, not a page. Default 100. */
  senderRetryMs?: number;
  /**
   * An experiment, not the page: a client's first attempt after a drop waits
   * up to this much more, uniformly at random (the page's first wait is the
   * same second for everyone). Default 0.
   */
  firstSpreadMs?: number;
}

/** What the storm load prints for `stop`. */
export interface StormResult {
  event: "result";
  clients: number;
  rooms: number;
  /** Messages the senders saw stored. */
  published: number;
  /** Copies clients should have received: each room's messages times its clients. */
  expected: number;
  lost: number;
  /** A few of the lost copies, described for a diagnosis. */
  lostSample: string[];
  duplicated: number;
  /** Room frames received again with an id at or below the last one seen. */
  repeatedIds: number;
  /** Welcomes after a drop with `recovered: false`: history lost across the reconnect. */
  notRecovered: number;
  /** Clients never back by the end. */
  notBack: number;
  /** Milliseconds from the first drop until the last client's welcome. */
  allBackMs: number;
  /** From the first drop to each client's welcome, ms. */
  welcomeP50Ms: number;
  welcomeP99Ms: number;
  /** From opening the socket that got the welcome to the welcome, ms. */
  handshakeP99Ms: number;
  /** Connection attempts that failed during the storm. */
  failedAttempts: number;
  /** Error frames received. */
  errors: number;
  /** Milliseconds to connect every client at first. */
  connectMs: number;
}

/** One reconnecting socket's state. */
interface Peer {
  name: string;
  room: string;
  sender: boolean;
  ws: WebSocket | undefined;
  welcomed: boolean;
  lastId: number;
  epoch: string;
  attempt: number;
  openedAt: number;
  drops: number;
  /** Wall time of the welcome after the first drop; NaN until then. */
  backAt: number;
  backHandshakeMs: number;
  seqs: Set<number>;
  /** A sender's: when each of its sequence numbers came back stored. */
  seenAt: Map<number, number>;
  /** Whether the last welcome or history frame said more history follows. */
  replaying: boolean;
  lastFrameAt: number;
  duplicated: number;
  repeatedIds: number;
  onWelcome?: () => void;
}

const SEQ = /"message":"(\d+)\|/;

/** The clients and senders of one process and their counts. */
class Storm {
  readonly config: StormConfig;
  readonly clients: Peer[] = [];
  readonly senders: Peer[] = [];
  stopping = false;
  firstDropAt = NaN;
  failedAttempts = 0;
  notRecovered = 0;
  errors = 0;
  #seq: number[];

  constructor(config: StormConfig) {
    this.config = config;
    this.#seq = new Array(config.rooms).fill(0);
  }

  /** Whether every sender heard back of every message it sent (or some are lost on its socket). */
  sendersHeardBack(): boolean {
    return this.senders.every((s, room) => s.seqs.size >= this.#seq[room]!);
  }

  #url(peer: Peer): string {
    const params = new URLSearchParams({ room: peer.room, batch: "1", heartbeat: "1" });
    if (peer.lastId > 0) {
      params.set("since", String(peer.lastId));
      if (peer.epoch !== "") params.set("epoch", peer.epoch);
    }
    return `${this.config.base}/ws/chat/${encodeURIComponent(peer.name)}?${params}`;
  }

  peer(name: string, room: string, sender: boolean): Peer {
    return {
      name,
      room,
      sender,
      ws: undefined,
      welcomed: false,
      lastId: 0,
      epoch: "",
      attempt: 0,
      openedAt: 0,
      drops: 0,
      backAt: NaN,
      backHandshakeMs: NaN,
      seqs: new Set(),
      seenAt: new Map(),
      replaying: false,
      lastFrameAt: NaN,
      duplicated: 0,
      repeatedIds: 0,
    };
  }

  /** Opens the peer's socket; it reopens by itself after every close until `stopping`. */
  open(peer: Peer): void {
    const ws = new WebSocket(this.#url(peer));
    peer.ws = ws;
    peer.openedAt = wallNow();
    ws.onmessage = (event) => {
      for (const line of (event.data as string).split("\n")) this.#receive(peer, line);
    };
    ws.onerror = () => {};
    ws.onclose = () => this.#closed(peer);
  }

  #closed(peer: Peer): void {
    if (peer.welcomed) {
      peer.drops++;
      if (Number.isNaN(this.firstDropAt)) this.firstDropAt = wallNow();
    } else if (peer.drops > 0 && !peer.sender) {
      this.failedAttempts++;
    }
    peer.welcomed = false;
    peer.ws = undefined;
    if (this.stopping && peer.sender) return;
    const spread = peer.attempt === 0 ? Math.random() * (this.config.firstSpreadMs ?? 0) : 0;
    const delay = peer.sender
      ? this.config.senderRetryMs ?? 100
      : reconnectDelay({ attempt: peer.attempt++, random: Math.random() }) + spread;
    setTimeout(() => this.open(peer), delay);
  }

  #receive(peer: Peer, line: string): void {
    peer.lastFrameAt = wallNow();
    if (line.startsWith('{"type":"message"') || line.startsWith('{"type":"system"')) {
      this.#roomFrame(peer, line);
    } else if (line.startsWith('{"type":"ping"')) {
      peer.ws?.send('{"type":"pong"}');
    } else if (line.startsWith('{"type":"welcome"') || line.startsWith('{"type":"history"')) {
      this.#replay(peer, JSON.parse(line));
    } else if (line.startsWith('{"type":"error"')) {
      this.errors++;
    }
  }

  #replay(
    peer: Peer,
    frame: {
      type: string;
      history: { id?: number }[];
      more: boolean;
      recovered?: boolean;
      epoch?: string;
    },
  ): void {
    if (frame.type === "welcome") this.#welcome(peer, frame);
    peer.replaying = frame.more;
    for (const stored of frame.history) this.#roomFrame(peer, JSON.stringify(stored), stored.id);
  }

  #welcome(peer: Peer, frame: { recovered?: boolean; epoch?: string }): void {
    if (peer.drops > 0 && peer.lastId > 0 && frame.recovered === false) this.notRecovered++;
    peer.epoch = frame.epoch ?? "";
    peer.welcomed = true;
    peer.attempt = 0;
    if (peer.drops > 0 && Number.isNaN(peer.backAt)) {
      peer.backAt = wallNow();
      peer.backHandshakeMs = peer.backAt - peer.openedAt;
    }
    peer.onWelcome?.();
    peer.onWelcome = undefined;
  }

  /** Counts a stored room frame: its id against the last seen, a sender's sequence number. */
  #roomFrame(peer: Peer, line: string, known?: number): void {
    const id = known ?? idOf(line);
    if (id === undefined) return;
    if (id <= peer.lastId) {
      peer.repeatedIds++;
      return;
    }
    peer.lastId = id;
    const seq = SEQ.exec(line)?.[1];
    if (seq === undefined) return;
    const n = Number(seq);
    if (peer.seqs.has(n)) {
      peer.duplicated++;
      return;
    }
    peer.seqs.add(n);
    if (peer.sender) peer.seenAt.set(n, wallNow());
  }

  /** Connects every client and sender at first, `connectConcurrency` at a time. */
  async connectAll(): Promise<void> {
    const { clients, rooms, namePrefix } = this.config;
    for (let r = 0; r < rooms; r++) {
      this.senders.push(this.peer(`${namePrefix}s${r}`, `storm${r}`, true));
    }
    for (let i = 0; i < clients; i++) {
      this.clients.push(this.peer(`${namePrefix}${i}`, `storm${i % rooms}`, false));
    }
    const all = [...this.senders, ...this.clients];
    let next = 0;
    const worker = async () => {
      while (next < all.length) {
        const peer = all[next++]!;
        await new Promise<void>((resolve) => {
          peer.onWelcome = resolve;
          this.open(peer);
        });
      }
    };
    const concurrency = Math.max(1, Math.min(this.config.connectConcurrency ?? 128, all.length));
    await Promise.all(Array.from({ length: concurrency }, worker));
  }

  /** Publishes `rate` messages per second over the rooms until the returned stop is called. */
  publish(): () => void {
    const rate = this.config.rate ?? 100;
    const started = performance.now();
    let offered = 0;
    let next = 0;
    const timer = setInterval(() => {
      const due = Math.floor((performance.now() - started) * rate / 1000) - offered;
      for (let i = 0; i < due; i++) {
        offered++;
        const room = next;
        next = (next + 1) % this.senders.length;
        const sender = this.senders[room]!;
        if (!sender.welcomed || sender.ws?.readyState !== WebSocket.OPEN) continue;
        const seq = ++this.#seq[room]!;
        sender.ws.send(`{"type":"message","message":"${seq}|${wallNow().toFixed(0)}"}`);
      }
    }, 10);
    return () => clearInterval(timer);
  }

  allBack(): boolean {
    return this.clients.every((c) => c.drops > 0 && c.welcomed);
  }
}

/** The `id` of a serialized room frame, when it has one (join and leave notices have none). */
function idOf(line: string): number | undefined {
  const at = line.indexOf('"id":');
  if (at < 0) return undefined;
  const id = parseInt(line.slice(at + 5, at + 25), 10);
  return Number.isFinite(id) ? id : undefined;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Waits until `done()` or `ms` passed, checking every 50 ms. */
async function until(done: () => boolean, ms: number): Promise<void> {
  const deadline = performance.now() + ms;
  while (!done() && performance.now() < deadline) await sleep(50);
}

/** Whether every client has every message its room's sender saw stored. */
function delivered(storm: Storm): boolean {
  return storm.clients.every((c) => {
    const truth = storm.senders[Number(c.room.slice(5))]!.seqs;
    return c.welcomed && c.seqs.size >= truth.size;
  });
}

const LOSS_SAMPLES = 5;

/** One lost copy: which, and what the client had seen last and when (ms after the first drop). */
function lossLine(storm: Storm, c: Peer, seq: number): string {
  const at = (t: number) => Math.round(t - storm.firstDropAt);
  const sender = storm.senders[Number(c.room.slice(5))]!;
  return `${c.name} in ${c.room}: #${seq} (stored at ${at(sender.seenAt.get(seq) ?? NaN)}) ` +
    `missing; last id ${c.lastId}, back at ${at(c.backAt)}, last frame at ${at(c.lastFrameAt)}, ` +
    `replay ${c.replaying ? "still going" : "done"}, ${c.drops} drops, ` +
    `${c.welcomed ? "connected" : "not connected"} at the end`;
}

/** The result: each client's sequence numbers against its room's sender's. */
function result(storm: Storm, connectMs: number): StormResult {
  let published = 0, expected = 0, lost = 0, duplicated = 0, repeatedIds = 0, notBack = 0;
  for (const s of storm.senders) published += s.seqs.size;
  const welcome = new LatencyHistogram();
  const handshake = new LatencyHistogram();
  let lastBack = NaN;
  const lostSample: string[] = [];
  for (const c of storm.clients) {
    const truth = storm.senders[Number(c.room.slice(5))]!.seqs;
    expected += truth.size;
    for (const seq of truth) {
      if (c.seqs.has(seq)) continue;
      if (lost++ < LOSS_SAMPLES) lostSample.push(lossLine(storm, c, seq));
    }
    duplicated += c.duplicated;
    repeatedIds += c.repeatedIds;
    if (Number.isNaN(c.backAt)) {
      notBack++;
      continue;
    }
    welcome.record(c.backAt - storm.firstDropAt);
    handshake.record(c.backHandshakeMs);
    if (!(c.backAt <= lastBack)) lastBack = c.backAt;
  }
  return {
    event: "result",
    clients: storm.clients.length,
    rooms: storm.senders.length,
    published,
    expected,
    lost,
    lostSample,
    duplicated,
    repeatedIds,
    notRecovered: storm.notRecovered,
    notBack,
    allBackMs: notBack > 0 ? NaN : lastBack - storm.firstDropAt,
    welcomeP50Ms: welcome.quantile(0.5),
    welcomeP99Ms: welcome.quantile(0.99),
    handshakeP99Ms: handshake.quantile(0.99),
    failedAttempts: storm.failedAttempts,
    errors: storm.errors,
    connectMs,
  };
}

/** `stop`: waits for the storm to pass, publishes a little longer and settles. */
async function finish(storm: Storm, stopPublishing: () => void): Promise<void> {
  await until(() => storm.allBack(), storm.config.maxWaitMs ?? 60_000);
  await sleep(storm.config.afterMs ?? 1000);
  stopPublishing();
  // A message is stored before its sender hears of it: until then it is not among those every
  // client must have, and a client checked now would not be waited for.
  await until(() => storm.sendersHeardBack(), 2_000);
  // The last messages reach every client (or never will).
  await until(() => delivered(storm), 10_000);
  storm.stopping = true;
}

async function main(raw: string | undefined): Promise<void> {
  if (raw === undefined) throw new TypeError("Missing storm configuration: pass it as JSON");
  const storm = new Storm(JSON.parse(raw) as StormConfig);
  const started = performance.now();
  await storm.connectAll();
  const connectMs = performance.now() - started;
  console.log(JSON.stringify({ event: "ready", clients: storm.clients.length, connectMs }));
  let stopPublishing = () => {};
  for await (const line of lines(Deno.stdin.readable)) {
    const command = line.trim();
    if (command === "run") stopPublishing = storm.publish();
    // `pause` keeps the clients connected after the result, for the runner to look at the server.
    if (command !== "pause" && command !== "stop") continue;
    await finish(storm, stopPublishing);
    console.log(JSON.stringify(result(storm, connectMs)));
    if (command === "stop") break;
  }
  Deno.exit(0);
}

if (import.meta.main) {
  main(Deno.args[0]).catch((error) => {
    console.log(JSON.stringify({ event: "error", message: String(error) }));
    Deno.exit(1);
  });
}
