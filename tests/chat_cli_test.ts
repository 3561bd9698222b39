import assert from "node:assert/strict";
import type { MessageFrame, PrivateFrame, SystemFrame } from "../client/mod.ts";
import { clockTime, formatFrame, HELP, parseArgs, parseCommand, USAGE } from "../tools/chat.ts";
import { startServer, type TestServer } from "./helpers/app_server.ts";
import { eventually } from "./helpers/eventually.ts";
import { TestClient } from "./helpers/ws_client.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const WAIT_MS = 10_000;

/** `tools/chat.ts` run as `deno task chat` runs it, its stdout read line by line. */
class ChatProcess implements AsyncDisposable {
  /** Every stdout line so far. */
  readonly lines: string[] = [];
  /** Every stderr line so far. */
  readonly errors: string[] = [];
  /** Resolves with the exit status once both outputs are read to their end. */
  readonly status: Promise<Deno.CommandStatus>;
  readonly #child: Deno.ChildProcess;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  #cursor = 0;
  #ended = false;
  #changed = Promise.withResolvers<void>();
  #exited = false;

  /** Starts the program with `args`; `extraEnv` adds to a minimal environment. */
  constructor(args: string[], extraEnv: Record<string, string> = {}) {
    const env: Record<string, string> = { NO_COLOR: "1" };
    for (const name of ["PATH", "HOME", "DENO_DIR", "TZ"]) {
      const value = Deno.env.get(name);
      if (value !== undefined) env[name] = value;
    }
    Object.assign(env, extraEnv);
    this.#child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-net", "--allow-env=CHAT_TOKEN", "tools/chat.ts", ...args],
      cwd: ROOT,
      clearEnv: true,
      env,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#stdin = this.#child.stdin.getWriter();
    const read = Promise.all([
      this.#read(this.#child.stdout, this.lines).then(() => this.#wake(true)),
      this.#read(this.#child.stderr, this.errors),
    ]);
    this.status = Promise.all([this.#child.status, read]).then(([status]) => {
      this.#exited = true;
      return status;
    });
  }

  /** Types a line. */
  async type(line: string): Promise<void> {
    await this.#stdin.write(new TextEncoder().encode(`${line}\n`));
  }

  /** Closes stdin: the end of input. */
  async endInput(): Promise<void> {
    await this.#stdin.close().catch(() => {});
  }

  /**
   * Resolves with the first unread stdout line that matches, and marks it and
   * every line before it read; rejects after `timeoutMs` or at the end of output.
   */
  async line(pattern: RegExp, timeoutMs = WAIT_MS): Promise<string> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), timeoutMs);
    });
    try {
      for (;;) {
        const index = this.lines.findIndex((line, i) => i >= this.#cursor && pattern.test(line));
        if (index >= 0) {
          this.#cursor = index + 1;
          return this.lines[index]!;
        }
        const why = this.#ended ? "end of output" : await Promise.race([
          this.#changed.promise,
          timeout,
        ]);
        if (why !== undefined) throw new Error(`No line matching ${pattern} (${why}):\n${this}`);
      }
    } finally {
      clearTimeout(timer);
    }
  }

  /** Resolves with the exit status; rejects (after killing it) when it runs past `timeoutMs`. */
  async exit(timeoutMs = WAIT_MS): Promise<Deno.CommandStatus> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), timeoutMs);
    });
    const status = await Promise.race([this.status, timeout]).finally(() => clearTimeout(timer));
    if (status === undefined) throw new Error(`Still running after ${timeoutMs} ms:\n${this}`);
    return status;
  }

  /** Stdout and stderr, for failure messages. */
  toString(): string {
    return [...this.lines.map((l) => `  out| ${l}`), ...this.errors.map((l) => `  err| ${l}`)]
      .join("\n");
  }

  /** Kills the program if it still runs and waits for it. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.endInput();
    if (!this.#exited) {
      try {
        this.#child.kill("SIGKILL");
      } catch {
        // It exited meanwhile.
      }
    }
    await this.status;
  }

  async #read(stream: ReadableStream<Uint8Array>, into: string[]): Promise<void> {
    let rest = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      const parts = (rest + chunk).split("\n");
      rest = parts.pop() ?? "";
      into.push(...parts);
      this.#wake(false);
    }
    if (rest !== "") into.push(rest);
  }

  #wake(ended: boolean): void {
    this.#ended ||= ended;
    const changed = this.#changed;
    this.#changed = Promise.withResolvers<void>();
    changed.resolve();
  }
}

/** Runs alice's program on `server` (http URL) with `args` after the URL. */
function chat(server: TestServer, ...args: string[]): ChatProcess {
  return new ChatProcess([server.httpUrl("/"), ...args]);
}

/** Bob, connected and welcomed in the lobby. */
async function bob(server: TestServer): Promise<TestClient> {
  const client = await TestClient.connect(server.url("/ws/chat/bob"));
  await client.next("welcome");
  return client;
}

const TIME = String.raw`\d\d:\d\d`;

// ---------------------------------------------------------------------------
// Units

const STAMP = "2026-01-02T03:04:05.000Z";
const message: MessageFrame = {
  type: "message",
  id: 1,
  room: "lobby",
  username: "bob",
  sender: "bob",
  message: "hi all",
  timestamp: STAMP,
};

Deno.test("parseCommand reads each command, its arguments and plain lines", async (t) => {
  const cases: [string, string, ReturnType<typeof parseCommand>][] = [
    ["a plain line is said, trimmed", "  hello there ", { kind: "say", text: "hello there" }],
    ["a blank line is nothing", "   ", undefined],
    ["// sends a line starting with /", "//shrug", { kind: "say", text: "/shrug" }],
    ["/msg: name and text", "/msg bob psst", { kind: "msg", to: "bob", text: "psst" }],
    ["/msg keeps the text's spacing", "/msg bob a  b c", {
      kind: "msg",
      to: "bob",
      text: "a  b c",
    }],
    ["/msg to a name inside '/msg'", "/msg m hi", { kind: "msg", to: "m", text: "hi" }],
    ["/msg to a name in the text", "/msg al hi al", { kind: "msg", to: "al", text: "hi al" }],
    ["/msg without text", "/msg bob", { kind: "invalid", reason: "Usage: /msg NAME TEXT" }],
    ["/msg without a name", "/msg", { kind: "invalid", reason: "Usage: /msg NAME TEXT" }],
    ["/join ROOM", "/join dev", { kind: "join", room: "dev" }],
    ["/JOIN in capitals", "/JOIN dev", { kind: "join", room: "dev" }],
    ["/join without a room", "/join", { kind: "invalid", reason: "Usage: /join ROOM" }],
    ["/leave", "/leave", { kind: "leave" }],
    ["/leave ROOM", "/leave dev", { kind: "leave", room: "dev" }],
    ["/rename NAME", "/rename alicia", { kind: "rename", name: "alicia" }],
    ["/nick NAME", "/nick alicia", { kind: "rename", name: "alicia" }],
    ["/rename without a name", "/rename", { kind: "invalid", reason: "Usage: /rename NAME" }],
    ["/users", "/users", { kind: "users" }],
    ["/who", "/who", { kind: "users" }],
    ["/rooms", "/rooms", { kind: "rooms" }],
    ["/help", "/help", { kind: "help" }],
    ["/quit", "/quit", { kind: "quit" }],
    ["/exit", "/exit", { kind: "quit" }],
    ["an unknown command", "/dance now", {
      kind: "invalid",
      reason: "Unknown command: /dance (try /help)",
    }],
  ];
  for (const [name, line, expected] of cases) {
    await t.step(name, () => assert.deepEqual(parseCommand(line), expected));
  }
});

Deno.test("formatFrame prints one line per frame, naming a room that is not the current one", async (t) => {
  const time = clockTime(STAMP);
  await t.step("a message in the current room", () => {
    assert.equal(formatFrame(message, "lobby"), `${time} bob: hi all`);
  });
  await t.step("a message in another room", () => {
    assert.equal(formatFrame(message, "dev"), `${time} #lobby bob: hi all`);
  });
  await t.step("a notice", () => {
    const notice: SystemFrame = {
      ...message,
      type: "system",
      event: "join",
      message: "carol joined the room",
      username: "System",
      sender: "System",
      user: "carol",
      connected_count: 3,
    };
    assert.equal(formatFrame(notice, "lobby"), `${time} * carol joined the room`);
    assert.equal(formatFrame(notice, "dev"), `${time} #lobby * carol joined the room`);
  });
  await t.step("a private message, wherever it was sent from", () => {
    const psst: PrivateFrame = { ...message, type: "private", from: "bob", to: "alice" };
    assert.equal(formatFrame(psst, "dev"), `${time} [private] bob → alice: hi all`);
  });
});

Deno.test("clockTime is HH:MM in local time", async (t) => {
  await t.step("hours and minutes padded to two digits", () => {
    assert.equal(clockTime(new Date(2026, 0, 2, 9, 5, 59).toISOString()), "09:05");
  });
  await t.step("afternoon", () => {
    assert.equal(clockTime(new Date(2026, 6, 1, 23, 47).toISOString()), "23:47");
  });
  await t.step("not a time", () => assert.equal(clockTime("soon"), "--:--"));
});

Deno.test("parseArgs reads the URL, the name and the options", async (t) => {
  const env = (value?: string) => (name: string) => name === "CHAT_TOKEN" ? value : undefined;
  await t.step("URL and name", () => {
    assert.deepEqual(parseArgs(["http://h:1", "alice"]), {
      url: "http://h:1",
      username: "alice",
      room: "lobby",
      token: undefined,
    });
  });
  await t.step("--room and --token (a value may hold =)", () => {
    assert.deepEqual(parseArgs(["--room=dev", "ws://h", "--token=a.b=c"]), {
      url: "ws://h",
      username: undefined,
      room: "dev",
      token: "a.b=c",
    });
  });
  await t.step("CHAT_TOKEN when there is no --token", () => {
    const options = parseArgs(["https://h", "alice"], env("t1"));
    assert.equal(typeof options === "object" && options.token, "t1");
    const flag = parseArgs(["https://h", "--token=t2"], env("t1"));
    assert.equal(typeof flag === "object" && flag.token, "t2");
  });
  const errors: [string, string[], string][] = [
    ["no URL", [], "Missing server URL"],
    ["not a URL", ["nowhere"], "Invalid server URL (http, https, ws or wss): nowhere"],
    ["another scheme", ["ftp://h"], "Invalid server URL (http, https, ws or wss): ftp://h"],
    ["an unknown option", ["http://h", "--verbose"], "Unknown option: --verbose"],
    ["an option without value", ["http://h", "--room"], "Missing value (--room=VALUE): --room"],
    ["a third argument", ["http://h", "alice", "bob"], "Unexpected argument: bob"],
  ];
  for (const [name, args, error] of errors) {
    await t.step(name, () => assert.equal(parseArgs(args), error));
  }
});

// ---------------------------------------------------------------------------
// The program

/** The session's steps with rooms: /join, /rooms, /users, /leave and /help. */
async function roomCommands(
  t: Deno.TestContext,
  server: TestServer,
  alice: ChatProcess,
  b: TestClient,
): Promise<void> {
  await t.step("/join dev, then lines go to dev", async () => {
    b.sendJson({ type: "join", room: "dev" });
    await b.next((f) => f.type === "joined" && f.room === "dev");
    await alice.type("/join dev");
    await alice.line(/^-- Joined #dev \(2 online\)$/);
    await alice.type("in dev now");
    const frame = await b.next((f) => f.type === "message" && f.message === "in dev now");
    assert.equal(frame.room, "dev");
    // Lobby lines are now marked with their room.
    b.sendJson({ type: "message", room: "lobby", message: "back in the lobby" });
    await alice.line(new RegExp(`^${TIME} #lobby bob: back in the lobby$`));
  });
  await t.step("/rooms and /users list the rooms and who is in the current one", async () => {
    await alice.type("/rooms");
    await alice.line(/^-- Your rooms: #lobby #dev$/);
    // Carol in the lobby only: the lobby's list is not the current room's.
    await using carol = await TestClient.connect(server.url("/ws/chat/carol"));
    await carol.next("welcome");
    await alice.line(new RegExp(`^${TIME} #lobby \\* carol joined`));
    await alice.type("/users");
    await alice.line(/^-- Online in #dev: (alice, bob|bob, alice)$/);
  });
  await t.step("/leave leaves the current room; lines go to the one before", async () => {
    await alice.type("/leave");
    await alice.line(/^-- Left #dev$/);
    await alice.type("back again");
    const frame = await b.next((f) => f.type === "message" && f.message === "back again");
    assert.equal(frame.room, "lobby");
  });
  await t.step("/help lists the commands", async () => {
    await alice.type("/help");
    for (const line of HELP.split("\n")) await alice.line(new RegExp(`^${RegExp.escape(line)}$`));
  });
}

Deno.test("deno task chat: a session with bob, from the welcome to /quit", async (t) => {
  await using server = await startServer();
  await using b = await bob(server);
  await using alice = chat(server, "alice");

  await t.step("prints the connect line", async () => {
    await alice.line(/^-- Connected as alice in #lobby$/);
    await b.next((f) => f.type === "system" && f.event === "join" && f.user === "alice");
  });
  await t.step("a typed line reaches bob", async () => {
    await alice.type("hello bob");
    const frame = await b.next((f) => f.type === "message" && f.message === "hello bob");
    assert.equal(frame.username, "alice");
    assert.equal(frame.room, "lobby");
  });
  await t.step("bob's message is printed with its time and sender", async () => {
    b.sendJson({ type: "message", message: "hi alice" });
    const own = await b.next((f) => f.type === "message" && f.message === "hi alice");
    const line = await alice.line(/bob: hi alice$/);
    assert.equal(line, `${clockTime(String(own.timestamp))} bob: hi alice`);
  });
  await t.step("/msg bob psst reaches bob as a private frame", async () => {
    await alice.type("/msg bob psst");
    const frame = await b.next("private");
    assert.deepEqual([frame.from, frame.to, frame.message], ["alice", "bob", "psst"]);
    await alice.line(new RegExp(`^${TIME} \\[private\\] alice → bob: psst$`));
  });
  await t.step("bob's private message is printed", async () => {
    b.sendJson({ type: "private", to: "alice", message: "hush" });
    await alice.line(new RegExp(`^${TIME} \\[private\\] bob → alice: hush$`));
  });
  await t.step("a refused message is printed with the reason", async () => {
    await alice.type("/msg nobody hi");
    await alice.line(/^!! Not sent \(User not online: nobody\): hi$/);
  });
  await t.step("an unknown command prints an error; the program goes on", async () => {
    await alice.type("/dance");
    await alice.line(/^!! Unknown command: \/dance \(try \/help\)$/);
    await alice.type("still here");
    await b.next((f) => f.type === "message" && f.message === "still here");
  });
  await roomCommands(t, server, alice, b);
  await t.step("/rename alicia is printed and bob sees the notice", async () => {
    await alice.type("/rename alicia");
    await alice.line(/^-- You are now alicia$/);
    const notice = await b.next((f) => f.type === "system" && f.event === "rename");
    assert.deepEqual([notice.old_name, notice.user], ["alice", "alicia"]);
  });
  await t.step("/rename to the same name says so; the program goes on", async () => {
    await alice.type("/rename alicia");
    await alice.line(/^!! That is already your name: alicia$/);
    await alice.type("/rooms");
    await alice.line(/^-- Your rooms: #lobby$/);
  });
  await t.step("/quit exits with 0 and alice leaves", async () => {
    await alice.type("/quit");
    assert.equal((await alice.exit()).code, 0);
    await b.next((f) => f.type === "system" && f.event === "leave" && f.user === "alicia");
    await eventually("the server has no alicia", () => !server.app.manager.isOnline("alicia"));
  });
});

Deno.test("deno task chat: the end of input ends the session with 0", async () => {
  await using server = await startServer();
  await using b = await bob(server);
  await using alice = chat(server, "alice");
  await alice.line(/^-- Connected as alice in #lobby$/);
  await alice.type("bye for now");
  await alice.endInput();
  assert.equal((await alice.exit()).code, 0);
  await b.next((f) => f.type === "message" && f.message === "bye for now");
  await b.next((f) => f.type === "system" && f.event === "leave" && f.user === "alice");
  assert.equal(server.app.manager.isOnline("alice"), false);
});

Deno.test("deno task chat: input piped before the welcome is still sent", async (t) => {
  await using server = await startServer();
  await using b = await bob(server);
  b.sendJson({ type: "join", room: "dev" });
  await b.next((f) => f.type === "joined" && f.room === "dev");
  const cases: [string, string[], string][] = [
    ["a plain line", ["early bird"], "lobby"],
    ["/join dev, then a line", ["/join dev", "early in dev"], "dev"],
  ];
  for (const [name, input, room] of cases) {
    await t.step(name, async () => {
      await using alice = chat(server, "alice");
      // All typed at once, before the program has connected, then the end of input.
      for (const line of input) await alice.type(line);
      await alice.endInput();
      assert.equal((await alice.exit()).code, 0, String(alice));
      const text = input.at(-1);
      const frame = await b.next((f) => f.type === "message" && f.message === text);
      assert.equal(frame.room, room);
      assert.ok(!alice.lines.some((l) => l.startsWith("!!")), String(alice));
      await b.next((f) => f.type === "system" && f.event === "leave" && f.user === "alice");
    });
  }
});

Deno.test("deno task chat: a reconnect keeps the room lines go to", async () => {
  await using server = await startServer();
  await using b = await bob(server);
  b.sendJson({ type: "join", room: "dev" });
  await b.next((f) => f.type === "joined" && f.room === "dev");
  await using alice = chat(server, "alice");
  await alice.line(/^-- Connected as alice in #lobby$/);
  await alice.type("/join dev");
  await alice.line(/^-- Joined #dev/);
  server.app.manager.disconnectUser("alice", 1012, "Service restart");
  await alice.line(/^-- Service restart; reconnecting in \d+ s$/);
  await alice.line(/^-- Connected as alice in #lobby$/);
  await b.next((f) => f.type === "system" && f.event === "join" && f.room === "dev");
  await alice.type("after the reconnect");
  const frame = await b.next((f) => f.type === "message" && f.message === "after the reconnect");
  assert.equal(frame.room, "dev");
  await alice.type("/quit");
  assert.equal((await alice.exit()).code, 0);
});

Deno.test("deno task chat: a name in use ends it with 1", async () => {
  await using server = await startServer();
  await using other = await TestClient.connect(server.url("/ws/chat/alice"));
  await other.next("welcome");
  await using alice = chat(server, "alice");
  await alice.line(/^-- Disconnected: Username already in use$/);
  assert.equal((await alice.exit()).code, 1);
});

Deno.test("deno task chat: bad arguments exit with 2 and the usage", async (t) => {
  const cases: [string, string[], string][] = [
    ["no URL", [], "Missing server URL"],
    [
      "an invalid URL",
      ["not a url", "alice"],
      "Invalid server URL (http, https, ws or wss): not a url",
    ],
    ["an unknown option", ["http://127.0.0.1:1", "--rom=dev"], "Unknown option: --rom=dev"],
  ];
  for (const [name, args, error] of cases) {
    await t.step(name, async () => {
      await using program = new ChatProcess(args);
      await program.endInput();
      const status = await program.exit();
      assert.equal(status.code, 2, String(program));
      assert.deepEqual(program.errors, [error, USAGE]);
      assert.deepEqual(program.lines, []);
    });
  }
});

Deno.test("deno task chat: times are printed in the local time zone", async () => {
  await using server = await startServer();
  await using b = await bob(server);
  // India has no daylight saving time: always UTC+05:30, whatever this machine's zone.
  await using alice = new ChatProcess([server.httpUrl("/"), "alice"], { TZ: "Asia/Kolkata" });
  await alice.line(/^-- Connected as alice in #lobby$/);
  b.sendJson({ type: "message", message: "what time is it" });
  const own = await b.next((f) => f.type === "message" && f.message === "what time is it");
  const shifted = new Date(Date.parse(String(own.timestamp)) + 330 * 60_000).toISOString();
  await alice.line(new RegExp(`^${shifted.slice(11, 16)} bob: what time is it$`));
  await alice.endInput();
  assert.equal((await alice.exit()).code, 0);
});

Deno.test("deno task chat: a line in no room is refused with a hint", async () => {
  await using server = await startServer();
  await using alice = chat(server, "alice");
  await alice.line(/^-- Connected as alice in #lobby$/);
  await alice.type("/leave");
  await alice.line(/^-- Left #lobby$/);
  await alice.type("anyone?");
  await alice.line(/^!! You are in no room \(try \/join ROOM\): anyone\?$/);
  await alice.type("/quit");
  assert.equal((await alice.exit()).code, 0);
});
