/**
 * `deno task chat <url> [name]`: a terminal chat client built on
 * {@linkcode ChatClient}. It reads lines from standard input and prints
 * what happens, one line each, with the time and the sender:
 *
 * ```text
 * 14:02 alice: hello
 * 14:02 * bob joined the room
 * 14:03 [private] bob → alice: psst
 * ```
 *
 * Commands: `/msg NAME TEXT`, `/join ROOM`, `/leave [ROOM]`, `/rename NAME`,
 * `/users`, `/rooms`, `/help`, `/quit`. Other lines go to the current room:
 * the last one joined. Options: `--room=ROOM` (the first room), `--token=JWT`
 * (or the CHAT_TOKEN variable) when the server has AUTH_SECRET.
 *
 * @module
 */

import {
  ChatClient,
  DEFAULT_ROOM,
  describeClose,
  type Fate,
  type MessageFrame,
  type PrivateFrame,
  type StateEvent,
  type SystemFrame,
} from "../client/mod.ts";

/** A line of input, read as a command or a message. */
export type Command =
  | { kind: "say"; text: string }
  | { kind: "msg"; to: string; text: string }
  | { kind: "join"; room: string }
  | { kind: "leave"; room?: string }
  | { kind: "rename"; name: string }
  | { kind: "users" }
  | { kind: "rooms" }
  | { kind: "help" }
  | { kind: "quit" }
  | { kind: "invalid"; reason: string };

/** The help text, printed by `/help`. */
export const HELP: string = [
  "/msg NAME TEXT   a private message",
  "/join ROOM       join a room; your messages go there",
  "/leave [ROOM]    leave a room (the current one)",
  "/rename NAME     change your name",
  "/users           who is in the current room",
  "/rooms           the rooms you are in",
  "/help            this list",
  "/quit            leave (Ctrl-D too)",
  "//TEXT           send a line that starts with /",
].join("\n");

/** Reads one line of input: a command when it starts with `/`, else a message. */
export function parseCommand(line: string): Command | undefined {
  const text = line.trim();
  if (text === "") return undefined;
  // `//text` sends "/text".
  if (!text.startsWith("/") || text.startsWith("//")) {
    return { kind: "say", text: text.startsWith("//") ? text.slice(1) : text };
  }
  const [head = "", ...rest] = text.split(/\s+/);
  const arg = rest.join(" ");
  switch (head.toLowerCase()) {
    case "/msg": {
      // The name is the second word, the text the rest as typed (not found by searching for
      // the name, which may also occur in `/msg` itself: `/msg m hi`).
      const [, to, message] = /^\S+\s+(\S+)\s+(.+)$/s.exec(text) ?? [];
      if (to === undefined || message === undefined) {
        return { kind: "invalid", reason: "Usage: /msg NAME TEXT" };
      }
      return { kind: "msg", to, text: message };
    }
    case "/join":
      return arg === ""
        ? { kind: "invalid", reason: "Usage: /join ROOM" }
        : { kind: "join", room: arg };
    case "/leave":
      return arg === "" ? { kind: "leave" } : { kind: "leave", room: arg };
    case "/rename":
    case "/nick":
      return arg === ""
        ? { kind: "invalid", reason: "Usage: /rename NAME" }
        : { kind: "rename", name: arg };
    case "/users":
    case "/who":
      return { kind: "users" };
    case "/rooms":
      return { kind: "rooms" };
    case "/help":
      return { kind: "help" };
    case "/quit":
    case "/exit":
      return { kind: "quit" };
    default:
      return { kind: "invalid", reason: `Unknown command: ${head} (try /help)` };
  }
}

/** `HH:MM` of an ISO timestamp, in local time. */
export function clockTime(iso: string): string {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "--:--";
  return `${String(date.getHours()).padStart(2, "0")}:${
    String(date.getMinutes()).padStart(2, "0")
  }`;
}

/** One printed line for a stored frame; `room` is shown when it is not the current room. */
export function formatFrame(
  frame: MessageFrame | SystemFrame | PrivateFrame,
  currentRoom: string,
): string {
  const time = clockTime(frame.timestamp);
  const where = frame.type !== "private" && frame.room !== currentRoom ? ` #${frame.room}` : "";
  switch (frame.type) {
    case "message":
      return `${time}${where} ${frame.sender}: ${frame.message}`;
    case "system":
      return `${time}${where} * ${frame.message}`;
    case "private":
      return `${time} [private] ${frame.from} → ${frame.to}: ${frame.message}`;
  }
}

/** One printed line for a change of the connection's state. */
export function formatState(event: StateEvent, client: ChatClient): string | undefined {
  switch (event.state) {
    case "connecting":
      return undefined;
    case "open":
      return `-- Connected as ${client.username} in #${client.rooms[0] ?? "?"}`;
    case "reconnecting": {
      const seconds = Math.ceil((event.delayMs ?? 0) / 1000);
      return `-- ${describeClose(event.code ?? 1006, event.reason)}; reconnecting in ${seconds} s`;
    }
    case "closed":
      return `-- Disconnected: ${describeClose(event.code ?? 1000, event.reason)}`;
    default:
      return undefined;
  }
}

function reportFate(fate: Fate, text: string, print: (line: string) => void): void {
  if (fate.status === "refused") print(`!! Not sent (${fate.reason}): ${text}`);
}

/** Resolves true once the client is open; false when it closes or `timeoutMs` passes first. */
function opened(chat: ChatClient, timeoutMs = 10_000): Promise<boolean> {
  if (chat.state === "open") return Promise.resolve(true);
  if (chat.state === "closed") return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (value: boolean) => {
      clearTimeout(timer);
      off();
      resolve(value);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    const off = chat.on("state", ({ state }) => {
      if (state === "open" || state === "closed") done(state === "open");
    });
  });
}

/** Runs a room command once connected: a line typed (or piped) before the welcome waits. */
async function whenOpen(chat: ChatClient, print: (line: string) => void, act: () => Promise<void>) {
  if (await opened(chat)) await act();
  else print("!! Not connected");
}

/**
 * Asks for a new name without waiting for the answer: the server answers a
 * rename only with the notices in the user's rooms, so a rename to the same
 * name, or made in no room, never settles and must not hold up the input.
 */
function rename(chat: ChatClient, name: string, print: (line: string) => void): Promise<void> {
  if (name === chat.username) {
    print(`!! That is already your name: ${name}`);
    return Promise.resolve();
  }
  chat.rename(name).then(
    (renamed) => print(`-- You are now ${renamed}`),
    (error) => print(`!! ${error.message}`),
  );
  return Promise.resolve();
}

/** Runs one command against the client; false when the session should end. */
async function run(command: Command, chat: ChatClient, session: Session): Promise<boolean> {
  const { print } = session;
  switch (command.kind) {
    case "say":
      if (chat.state === "open" && !chat.rooms.includes(session.room)) {
        print(`!! You are in no room (try /join ROOM): ${command.text}`);
        return true;
      }
      chat.send(command.text, { room: session.room }).then((f) =>
        reportFate(f, command.text, print)
      );
      return true;
    case "msg":
      chat.send(command.text, { to: command.to }).then((f) => reportFate(f, command.text, print));
      return true;
    case "join":
      await whenOpen(chat, print, () =>
        chat.join(command.room).then(
          (joined) => {
            session.room = joined.room;
            print(`-- Joined #${joined.room} (${joined.users.length} online)`);
          },
          (error) => print(`!! ${error.message}`),
        ));
      return true;
    case "leave":
      await whenOpen(chat, print, () => {
        if (!chat.leave(command.room ?? session.room)) print("!! Not connected");
        return Promise.resolve();
      });
      return true;
    case "rename":
      await whenOpen(chat, print, () => rename(chat, command.name, print));
      return true;
    case "quit":
      return false;
    default:
      print(describe(command, chat, session.room));
      return true;
  }
}

/** The printed answer of a command that only shows something. */
function describe(
  command: Extract<Command, { kind: "users" | "rooms" | "help" | "invalid" }>,
  chat: ChatClient,
  room: string,
): string {
  switch (command.kind) {
    case "users":
      return `-- Online in #${room}: ${chat.users(room).join(", ")}`;
    case "rooms":
      return `-- Your rooms: ${chat.rooms.map((r) => `#${r}`).join(" ")}`;
    case "help":
      return HELP;
    case "invalid":
      return `!! ${command.reason}`;
  }
}

/** Lines of a byte stream, without their line ends. */
async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let rest = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    const parts = (rest + chunk).split(/\r?\n/);
    rest = parts.pop() ?? "";
    yield* parts;
  }
  if (rest !== "") yield rest;
}

/** The current room (where plain lines go) and where lines are printed. */
interface Session {
  room: string;
  print: (line: string) => void;
}

function subscribe(chat: ChatClient, session: Session): void {
  const { print } = session;
  chat.on("state", (event) => {
    const line = formatState(event, chat);
    if (line !== undefined) print(line);
  });
  chat.on("message", ({ frame }) => print(formatFrame(frame, session.room)));
  chat.on("system", ({ frame }) => print(formatFrame(frame, session.room)));
  chat.on("private", ({ frame }) => print(formatFrame(frame, session.room)));
  chat.on("gap", ({ room }) => print(`-- Some messages of #${room} may be missing`));
  chat.on("left", ({ room }) => {
    print(`-- Left #${room}`);
    if (room === session.room) session.room = chat.rooms.at(-1) ?? session.room;
  });
  // The first welcome names the first room as the server spells it; a reconnect's welcome
  // (the first room again) keeps the room the user had moved to, which the client rejoins.
  chat.on("welcome", (frame) => {
    if (!chat.rooms.includes(session.room)) session.room = frame.room;
  });
  chat.on("error", (frame) => print(`!! ${frame.message}`));
}

/** What the command line asks for. */
export interface Options {
  /** The server, `http(s)://` or `ws(s)://`. */
  url: string;
  /** The username; the server names an anonymous user without one. */
  username?: string;
  /** The first room. */
  room: string;
  /** A JWT for a server with AUTH_SECRET. */
  token?: string;
}

/** The usage line, printed on stderr after an argument error. */
export const USAGE = "Usage: deno task chat <url> [name] [--room=ROOM] [--token=JWT]";

/**
 * Reads the command line; a string is what is wrong with it. `env` reads
 * CHAT_TOKEN, used when there is no `--token`.
 */
export function parseArgs(
  args: string[],
  env: (name: string) => string | undefined = () => undefined,
): Options | string {
  const positional: string[] = [];
  const flags = new Map<string, string>();
  for (const arg of args) {
    if (!arg.startsWith("--")) {
      positional.push(arg);
      continue;
    }
    // Split at the first `=` only: a value may hold one.
    const [name = "", value = ""] = arg.slice(2).split(/=(.*)/s);
    if (name !== "room" && name !== "token") return `Unknown option: ${arg}`;
    if (value === "") return `Missing value (--${name}=VALUE): ${arg}`;
    flags.set(name, value);
  }
  const [url, username, extra] = positional;
  if (url === undefined) return "Missing server URL";
  if (extra !== undefined) return `Unexpected argument: ${extra}`;
  const protocol = URL.canParse(url) ? new URL(url).protocol : "";
  if (!["http:", "https:", "ws:", "wss:"].includes(protocol)) {
    return `Invalid server URL (http, https, ws or wss): ${url}`;
  }
  const token = flags.get("token") ?? (env("CHAT_TOKEN") || undefined);
  return { url, username, room: flags.get("room") ?? DEFAULT_ROOM, token };
}

/** Prints one line on stdout, whole. */
function printLine(line: string): void {
  const bytes = new TextEncoder().encode(`${line}\n`);
  for (let at = 0; at < bytes.length;) at += Deno.stdout.writeSync(bytes.subarray(at));
}

/** Reads commands until `/quit` or the end of input. */
async function readInput(chat: ChatClient, session: Session): Promise<void> {
  for await (const line of lines(Deno.stdin.readable)) {
    const command = parseCommand(line);
    if (command !== undefined && !(await run(command, chat, session))) return;
  }
}

/** Waits (at most `timeoutMs`) until what was typed last has been answered. */
async function drain(chat: ChatClient, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (chat.queued > 0 && chat.state !== "closed" && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * Parses the arguments, connects, and chats until `/quit` or the end of
 * input (exit code 0) or a close the client cannot recover from (1); 2 for
 * bad arguments.
 */
export async function main(args: string[]): Promise<number> {
  const options = parseArgs(args, (name) => Deno.env.get(name));
  if (typeof options === "string") {
    console.error(options);
    console.error(USAGE);
    return 2;
  }
  const session: Session = { room: options.room, print: printLine };
  const chat = new ChatClient(options);
  const closed = new Promise<"closed">((resolve) =>
    chat.on("state", ({ state }) => state === "closed" && resolve("closed"))
  );
  subscribe(chat, session);
  chat.connect();
  const input = readInput(chat, session).then(() => "input" as const);
  if ((await Promise.race([input, closed])) === "closed") return 1;
  // Let what was typed last reach the server (even typed before the welcome) before leaving.
  await drain(chat);
  await chat.close();
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
