/**
 * The load generator: one process of WebSocket clients (Deno's own client)
 * driven over stdin by the benchmark runner.
 *
 * ```sh
 * deno run --allow-net bench/load.ts '{"base":"ws://127.0.0.1:8000","mode":"closed",...}'
 * ```
 *
 * It connects its clients, prints `{"event":"ready"}` on stdout, then obeys
 * one command per stdin line: `run` starts (or resumes) the traffic, `measure`
 * starts counting afresh, `pause` stops the traffic and prints
 * `{"event":"result",...}` for what was counted, keeping the clients
 * connected, and `stop` prints the result and exits. Room messages
 * carry `<client>|<send time in ms>|` padded to `bytes`; every copy of a
 * `{"type":"message"` frame a client receives is one delivery.
 *
 * @module
 */

import { type HistogramJson, LatencyHistogram } from "./stats.ts";
import { lines } from "./lines.ts";

/** What a load process does. */
export type LoadMode = "closed" | "paced" | "idle" | "churn";

/** The configuration of one load process (its only argument, as JSON). */
export interface LoadConfig {
  /** The server's base URL, e.g. `ws://127.0.0.1:8000`. */
  base: string;
  /** Path and query with `{name}` and `{room}` placeholders. */
  path: string;
  /** Closed loop, paced, idle connections or connection churn. */
  mode: LoadMode;
  /** Clients of this process; for churn, the clients cycling in parallel. */
  clients: number;
  /** Clients are spread over this many rooms, `r0`, `r1`, .... Default 1. */
  rooms?: number;
  /** Client names are this plus the client's index. Default `u`. */
  namePrefix?: string;
  /** The global index of this process's first client, for unique names. Default 0. */
  firstClient?: number;
  /** Closed loop: own messages in flight per client. Default 4. */
  window?: number;
  /** Paced: messages per second this process offers in all. Default 1000. */
  rate?: number;
  /** The length of each message text. Default 64. */
  bytes?: number;
  /** `welcome`: a client is ready at its welcome frame (our server); `open`: at open. Default `open`. */
  ready?: "open" | "welcome";
  /** Idle: answer `ping` frames with `pong`. Default false. */
  pong?: boolean;
  /** Idle: each client sends one message of this length once ready. Default 0 (none). */
  greetBytes?: number;
  /** Frames may carry several messages, one per line (our server's `?batch=1`). Default false. */
  batched?: boolean;
  /** Handshakes in flight while connecting. Default 64. */
  connectConcurrency?: number;
  /** Rooms are named this plus their index. Default `r`. */
  roomPrefix?: string;
  /** Churn: every cycle joins this room instead of one of its own. Default: its own. */
  churnRoom?: string;
  /** Churn: members that join `churnRoom` and stay, connected before the cycles start. Default 0. */
  members?: number;
}

/** What a load process prints when told to stop. */
export interface LoadResult {
  event: "result";
  mode: LoadMode;
  clients: number;
  /** Seconds between `measure` and `stop`. */
  seconds: number;
  /** Message frames received by all clients while measuring. */
  deliveries: number;
  /** UTF-16 units of those frames: their bytes, as the benchmark's text is ASCII. */
  deliveryChars: number;
  /** Messages sent while measuring. */
  sent: number;
  /** Error frames received (e.g. rate limited); should be 0. */
  errors: number;
  /** Ping frames received while measuring (idle). */
  pings: number;
  /** Connect-ready-close cycles completed while measuring (churn). */
  cycles: number;
  /** Milliseconds it took to connect every client. */
  connectMs: number;
  /** End-to-end latency: every delivery when paced, own messages in closed loop. */
  latency: HistogramJson;
  /** Paced: the 99th percentile of messages sent by one pacing tick (a lagging loop sends bursts); else NaN. */
  burstP99: number;
}

const MESSAGE_PREFIX = '{"type":"message"';
const MESSAGE_KEY = '"message":"';
// Long enough for a handshake queued behind 15,000 others joining rooms of 100 (idle15k).
const CONNECT_TIMEOUT_MS = 60_000;

/** The current time in fractional milliseconds since the epoch, comparable across processes. */
export function wallNow(): number {
  return performance.timeOrigin + performance.now();
}

/** Builds a message text `<client>|<time>|` padded with `x` to `bytes`. */
export function payload(client: number, bytes: number): string {
  const head = `${client}|${wallNow().toFixed(3)}|`;
  return head.length >= bytes ? head : head + "x".repeat(bytes - head.length);
}

/** Fills in `{name}` and `{room}`, URL-encoded. */
export function clientUrl(config: LoadConfig, name: string, room: string): string {
  const path = config.path.replaceAll("{name}", encodeURIComponent(name))
    .replaceAll("{room}", encodeURIComponent(room));
  return config.base + path;
}

interface Client {
  ws: WebSocket;
  /** Closed loop: fills the window of own messages in flight. */
  kick(): void;
}

/** One client's state, shared by its handlers. */
interface ClientState {
  ws: WebSocket;
  /** The client's global index: its messages start with it. */
  index: number;
  /** How its own messages start in a frame: `"message":"<index>|`. */
  own: string;
  /** Closed loop: own messages sent and not yet echoed. */
  inflight: number;
  ready: boolean;
  /** Resolves `open`; once, at open or at the welcome frame. */
  markReady(): void;
}

/** Calls `receive` with each line of a batched frame (our server's `?batch=1`). */
function eachLine(data: string, receive: (line: string) => void): void {
  let start = 0;
  for (let end = data.indexOf("\n"); end >= 0; end = data.indexOf("\n", start)) {
    receive(data.slice(start, end));
    start = end + 1;
  }
  receive(start === 0 ? data : data.slice(start));
}

class Load {
  readonly config: LoadConfig;
  histogram = new LatencyHistogram();
  running = false;
  measuring = false;
  stopped = false;
  deliveries = 0;
  deliveryChars = 0;
  sent = 0;
  errors = 0;
  pings = 0;
  cycles = 0;
  /** Paced: how many ticks sent each number of messages, while measuring. */
  bursts: number[] = [];
  clients: Client[] = [];
  #bytes: number;
  #window: number;
  #paced: boolean;
  /** Bumped by every `run`: a pacing or churn loop of an earlier run ends. */
  #generation = 0;

  constructor(config: LoadConfig) {
    this.config = config;
    this.#bytes = config.bytes ?? 64;
    this.#window = config.window ?? 4;
    this.#paced = config.mode === "paced";
  }

  /** Opens one client and resolves when it is ready. */
  open(index: number, name: string, room: string): Promise<Client> {
    const { promise, resolve, reject } = Promise.withResolvers<Client>();
    const ws = new WebSocket(clientUrl(this.config, name, room));
    const waitWelcome = this.config.ready === "welcome";
    const timer = setTimeout(
      () => reject(new Error(`Client not ready: ${name}`)),
      CONNECT_TIMEOUT_MS,
    );
    const state: ClientState = {
      ws,
      index,
      own: `${MESSAGE_KEY}${index}|`,
      inflight: 0,
      ready: false,
      markReady: () => {
        state.ready = true;
        clearTimeout(timer);
        this.#greet(state);
        resolve(client);
      },
    };
    const client: Client = { ws, kick: () => this.#fill(state) };
    ws.onopen = () => {
      if (!waitWelcome) state.markReady();
    };
    const receive = (data: string) => this.#receive(state, data);
    ws.onmessage = this.config.batched === true
      ? (event) => eachLine(event.data as string, receive)
      : (event) => receive(event.data as string);
    ws.onerror = () => {};
    ws.onclose = (event) => {
      clearTimeout(timer);
      if (!state.ready) reject(new Error(`Client closed before ready: ${name}: ${event.code}`));
    };
    return promise;
  }

  /** Idle: the one message a client sends once ready, when configured. */
  #greet(state: ClientState): void {
    const greet = this.config.greetBytes ?? 0;
    if (this.config.mode === "idle" && greet > 0) {
      state.ws.send(`{"type":"message","message":"${payload(state.index, greet)}"}`);
    }
  }

  /** Closed loop: sends until the client's window of own messages in flight is full. */
  #fill(state: ClientState): void {
    while (state.inflight < this.#window) this.#send(state);
  }

  #send(state: ClientState): void {
    state.inflight++;
    if (this.measuring) this.sent++;
    state.ws.send(`{"type":"message","message":"${payload(state.index, this.#bytes)}"}`);
  }

  /** Handles one server message (one line of a batched frame). */
  #receive(state: ClientState, data: string): void {
    if (data.startsWith(MESSAGE_PREFIX)) {
      this.#receiveMessage(state, data);
      return;
    }
    if (data.startsWith('{"type":"ping"')) {
      if (this.measuring) this.pings++;
      if (this.config.pong) state.ws.send('{"type":"pong"}');
    } else if (data.startsWith('{"type":"welcome"')) {
      if (!state.ready) state.markReady();
    } else if (data.startsWith('{"type":"error"')) {
      this.errors++;
    }
  }

  /** Counts a delivered room message and, in closed loop, refills on its own echo. */
  #receiveMessage(state: ClientState, data: string): void {
    if (this.measuring) {
      this.deliveries++;
      this.deliveryChars += data.length;
    }
    if (this.#paced) {
      if (this.measuring) this.#recordLatency(data, data.indexOf(MESSAGE_KEY));
      return;
    }
    const at = data.indexOf(state.own);
    // Closed loop: only its own echo moves a client's window.
    if (at < 0) return;
    if (this.measuring) this.#recordLatency(data, at);
    state.inflight--;
    if (this.running) this.#fill(state);
  }

  #recordLatency(data: string, at: number): void {
    if (at < 0) return;
    const start = data.indexOf("|", at) + 1;
    const end = data.indexOf("|", start);
    const sentAt = Number(data.slice(start, end));
    if (Number.isFinite(sentAt)) this.histogram.record(wallNow() - sentAt);
  }

  async connectAll(): Promise<void> {
    const { clients, rooms = 1, firstClient = 0 } = this.config;
    const concurrency = Math.max(1, Math.min(this.config.connectConcurrency ?? 64, clients));
    let next = 0;
    const worker = async () => {
      while (next < clients) {
        const i = next++;
        const index = firstClient + i;
        const name = `${this.config.namePrefix ?? "u"}${index}`;
        this.clients[i] = await this.open(
          index,
          name,
          `${this.config.roomPrefix ?? "r"}${index % rooms}`,
        );
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
  }

  /** Churn: the members of the churn room, who stay while the others cycle. */
  async connectMembers(): Promise<void> {
    const members = this.config.members ?? 0;
    const room = this.config.churnRoom;
    if (members === 0 || room === undefined) return;
    const concurrency = Math.max(1, Math.min(this.config.connectConcurrency ?? 64, members));
    let next = 0;
    const worker = async () => {
      while (next < members) {
        const i = next++;
        this.clients.push(await this.open(i, `${this.config.namePrefix ?? "u"}m${i}`, room));
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
  }

  /** Starts counting from zero. */
  measure(): void {
    this.histogram = new LatencyHistogram();
    this.bursts = [];
    this.deliveries =
      this.deliveryChars =
      this.sent =
      this.errors =
      this.pings =
      this.cycles =
        0;
    this.measuring = true;
  }

  /** Starts or resumes the traffic of the mode. */
  run(): void {
    if (this.running) return;
    this.running = true;
    this.#generation++;
    if (this.config.mode === "closed") {
      for (const client of this.clients) client.kick();
    } else if (this.config.mode === "paced") {
      this.#pace();
    } else if (this.config.mode === "churn") {
      for (let w = 0; w < this.config.clients; w++) this.#churn(w);
    }
  }

  #pace(): void {
    const rate = this.config.rate ?? 1000;
    const first = this.config.firstClient ?? 0;
    const started = performance.now();
    let offered = 0;
    let next = 0;
    const generation = this.#generation;
    const tick = () => {
      if (!this.running || generation !== this.#generation) return;
      const due = Math.floor((performance.now() - started) * rate / 1000) - offered;
      if (this.measuring) this.bursts[due] = (this.bursts[due] ?? 0) + 1;
      for (let i = 0; i < due; i++) {
        const ws = this.clients[next]!.ws;
        const index = first + next;
        next = (next + 1) % this.clients.length;
        offered++;
        if (ws.readyState !== WebSocket.OPEN) continue;
        if (this.measuring) this.sent++;
        ws.send(`{"type":"message","message":"${payload(index, this.#bytes)}"}`);
      }
      setTimeout(tick, 1);
    };
    tick();
  }

  async #churn(worker: number): Promise<void> {
    const first = this.config.firstClient ?? 0;
    let n = 0;
    const generation = this.#generation;
    while (this.running && generation === this.#generation) {
      const name = `${this.config.namePrefix ?? "u"}c${first + worker}_${n++}`;
      try {
        const room = this.config.churnRoom ?? `churn${first + worker}`;
        const { ws } = await this.open(first + worker, name, room);
        const closed = new Promise<void>((resolve) => {
          ws.addEventListener("close", () => resolve());
        });
        ws.close(1000);
        await closed;
        if (this.measuring) this.cycles++;
      } catch {
        this.errors++;
      }
    }
  }

  result(seconds: number, connectMs: number): LoadResult {
    return {
      event: "result",
      mode: this.config.mode,
      clients: this.config.clients,
      seconds,
      deliveries: this.deliveries,
      deliveryChars: this.deliveryChars,
      sent: this.sent,
      errors: this.errors,
      pings: this.pings,
      cycles: this.cycles,
      connectMs,
      latency: this.histogram.toJSON(),
      burstP99: this.#burstP99(),
    };
  }

  #burstP99(): number {
    let ticks = 0;
    for (const n of this.bursts) ticks += n ?? 0;
    if (ticks === 0) return NaN;
    let seen = 0;
    for (let due = 0; due < this.bursts.length; due++) {
      seen += this.bursts[due] ?? 0;
      if (seen >= 0.99 * ticks) return due;
    }
    return this.bursts.length - 1;
  }
}

function print(value: unknown): void {
  console.log(JSON.stringify(value));
}

async function main(raw: string | undefined): Promise<void> {
  if (raw === undefined) throw new TypeError("Missing load configuration: pass it as JSON");
  const config = JSON.parse(raw) as LoadConfig;
  const load = new Load(config);
  const connectStart = performance.now();
  if (config.mode !== "churn") await load.connectAll();
  else await load.connectMembers();
  const connectMs = performance.now() - connectStart;
  print({ event: "ready", clients: config.clients, connectMs });
  let measureStart = performance.now();
  for await (const line of lines(Deno.stdin.readable)) {
    const command = line.trim();
    if (command === "run") {
      load.run();
    } else if (command === "measure") {
      load.measure();
      measureStart = performance.now();
    } else if (command === "pause" || command === "stop") {
      load.measuring = false;
      load.running = false;
      print(load.result((performance.now() - measureStart) / 1000, connectMs));
      if (command === "stop") break;
    }
  }
  // The runner kills the server next; closing handshakes would only add noise.
  Deno.exit(0);
}

if (import.meta.main) {
  main(Deno.args[0]).catch((error) => {
    print({ event: "error", message: String(error) });
    Deno.exit(1);
  });
}
