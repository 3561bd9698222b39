/**
 * Starts throw-away `redis-server` processes on 127.0.0.1, for the tests
 * and the benchmark (`bench/scenarios.ts`).
 *
 * ```ts
 * await using server = await startRedis({ appendOnly: true });
 * // connect to server.url ...
 * ```
 *
 * @module
 */

/** Options for {@linkcode startRedis}. */
export interface StartRedisOptions {
  /** Require this password (`--requirepass`); none by default. */
  password?: string;
  /**
   * Serve TLS only, with a fresh certificate for 127.0.0.1 signed by a
   * throw-away CA (needs openssl). @default {false}
   */
  tls?: boolean;
  /**
   * Persist every write before replying (`appendonly yes`, `appendfsync
   * always`), so {@linkcode RedisServer.kill9} loses nothing acknowledged and
   * {@linkcode RedisServer.restart} comes back with the data. @default {false}
   */
  appendOnly?: boolean;
}

/** A running throw-away Redis server. */
export interface RedisServer extends AsyncDisposable {
  /** Port on 127.0.0.1, kept across {@linkcode RedisServer.restart}. */
  readonly port: number;
  /** `redis://` (`rediss://` in TLS mode) URL, including the password if one is set. */
  readonly url: string;
  /** PEM certificate of the CA that signed the server certificate, in TLS mode. */
  readonly caCert?: string;
  /** Stops the server with SIGTERM and waits for it to exit. */
  stop(): Promise<void>;
  /** Kills the server with SIGKILL, as a crash would, and waits for it to exit. */
  kill9(): Promise<void>;
  /**
   * Stops the server if it runs and starts it again on the same port: empty,
   * or with its data when started with `appendOnly`.
   */
  restart(): Promise<void>;
}

/** The program {@linkcode startRedis} runs, looked up on `PATH`. */
export const REDIS_BINARY = "redis-server";
const START_TIMEOUT_MS = 10_000;

/**
 * Starts `redis-server` on a free 127.0.0.1 port, without persistence unless
 * `appendOnly` is set, and resolves once it accepts connections.
 */
export async function startRedis(options: StartRedisOptions = {}): Promise<RedisServer> {
  const dir = await Deno.makeTempDir({ prefix: "redis_server_" });
  let lastError: unknown;
  try {
    const caCert = options.tls ? await makeCertificates(dir) : undefined;
    // The free port can be taken by someone else before redis binds it.
    for (let attempt = 0; attempt < 3; attempt++) {
      const server = new RedisProcess(freePort(), dir, options.password, caCert);
      server.appendOnly = options.appendOnly ?? false;
      try {
        await server.start();
        return server;
      } catch (error) {
        lastError = error;
      }
    }
  } catch (error) {
    lastError = error;
  }
  await Deno.remove(dir, { recursive: true });
  throw lastError;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

/** Writes ca.pem, server.pem and server.key into `dir`; returns the CA PEM. */
async function makeCertificates(dir: string): Promise<string> {
  // A separate CA is needed: rustls refuses a CA certificate presented as
  // the server certificate.
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await Deno.writeTextFile(
    `${dir}/server.ext`,
    "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n" +
      "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
  );
  const invocations = [
    ["req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2"]
      .concat(["-subj", "/CN=redis test CA"]),
    ["req", ...ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"],
    ["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-days", "2"]
      .concat(["-CAcreateserial", "-out", "server.pem", "-extfile", "server.ext"]),
  ];
  for (const args of invocations) {
    const { success, stderr } = await new Deno.Command("openssl", {
      args,
      cwd: dir,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!success) {
      throw new Error(`openssl failed: ${args[0]}\n${new TextDecoder().decode(stderr)}`);
    }
  }
  return await Deno.readTextFile(`${dir}/ca.pem`);
}

class RedisProcess implements RedisServer {
  readonly port: number;
  readonly url: string;
  readonly caCert?: string;
  appendOnly = false;
  #dir: string;
  #password: string | undefined;
  #child: Deno.ChildProcess | null = null;
  #exited: Promise<Deno.CommandStatus> | null = null;

  constructor(
    port: number,
    dir: string,
    password: string | undefined,
    caCert: string | undefined,
  ) {
    this.port = port;
    this.#dir = dir;
    this.#password = password;
    const auth = password === undefined ? "" : `:${encodeURIComponent(password)}@`;
    this.url = `${caCert === undefined ? "redis" : "rediss"}://${auth}127.0.0.1:${port}`;
    if (caCert !== undefined) this.caCert = caCert;
  }

  async start(): Promise<void> {
    if (this.#child !== null) throw new Error(`Redis server already running: ${this.port}`);
    const child = new Deno.Command(REDIS_BINARY, {
      args: this.#args(),
      cwd: this.#dir,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    this.#child = child;
    this.#exited = child.status;
    let exited = false;
    this.#exited.then(() => exited = true);
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (!exited) {
      try {
        // A plain TCP accept is enough: redis listens only once it is ready.
        const probe = await Deno.connect({ hostname: "127.0.0.1", port: this.port });
        probe.close();
        return;
      } catch {
        if (Date.now() > deadline) break;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
    await this.#signal("SIGKILL");
    const log = await Deno.readTextFile(`${this.#dir}/redis.log`).catch(() => "");
    throw new Error(`Redis server did not start: ${this.port}\n${log.slice(-2000)}`);
  }

  stop(): Promise<void> {
    return this.#signal("SIGTERM");
  }

  kill9(): Promise<void> {
    return this.#signal("SIGKILL");
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.kill9();
    await Deno.remove(this.#dir, { recursive: true }).catch(() => {});
  }

  /** The command line: no snapshots, the append-only file as asked, the log in the directory. */
  #args(): string[] {
    const listen = this.caCert === undefined ? ["--port", String(this.port)] : [
      "--port",
      "0",
      "--tls-port",
      String(this.port),
      "--tls-cert-file",
      "server.pem",
      "--tls-key-file",
      "server.key",
      "--tls-ca-cert-file",
      "ca.pem",
      "--tls-auth-clients",
      "no",
    ];
    const args = [
      ...listen,
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      this.appendOnly ? "yes" : "no",
      "--appendfsync",
      "always",
      "--daemonize",
      "no",
      "--dir",
      this.#dir,
      "--logfile",
      "redis.log",
    ];
    if (this.#password !== undefined) args.push("--requirepass", this.#password);
    return args;
  }

  async #signal(signal: Deno.Signal): Promise<void> {
    const child = this.#child;
    if (child === null) return;
    try {
      child.kill(signal);
    } catch {
      // Already exited.
    }
    await this.#exited;
    this.#child = null;
    this.#exited = null;
  }
}
