import assert from "node:assert/strict";
import { signJwt } from "../chat/auth/jwt.ts";
import { ignoreRedisTests, type RedisServer, startRedis } from "./helpers/redis_server.ts";
import { eventually } from "./helpers/eventually.ts";
import type { Frame } from "./helpers/fakes.ts";
import { startServer, type TestServer } from "./helpers/app_server.ts";
import { TestClient } from "./helpers/ws_client.ts";

const SECRET = "identity-test-secret-0123456789abcdef";
const RELAXED = {
  HANDSHAKES_PER_IP_PER_MIN: "10000",
  MAX_CONNECTIONS_PER_IP: "1000",
  RATE_LIMIT_PER_S: "1000",
  RATE_LIMIT_BURST: "1000",
};
const ignoreRedis = ignoreRedisTests();

const welcome = (f: Frame) => f.type === "welcome";
const nowS = () => Math.floor(Date.now() / 1000);

function token(sub: string, name: string): Promise<string> {
  return signJwt({ sub, name, iat: nowS(), exp: nowS() + 600 }, SECRET);
}

/** Two app instances in this process sharing one store, as two processes would. */
interface Pair extends AsyncDisposable {
  a: TestServer;
  b: TestServer;
}

/** The shared store of an engine: a fresh KV file or a fresh Redis. */
interface Store extends AsyncDisposable {
  env: Record<string, string>;
}

async function kvStore(): Promise<Store> {
  const dir = await Deno.makeTempDir({ prefix: "chat_identity_" });
  return {
    env: { CHAT_ENGINE: "kv", KV_PATH: `${dir}/chat.kv` },
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

async function redisStore(): Promise<Store> {
  const redis: RedisServer = await startRedis();
  return {
    env: { CHAT_ENGINE: "redis", REDIS_URL: redis.url },
    [Symbol.asyncDispose]: () => redis[Symbol.asyncDispose](),
  };
}

async function startPair(store: Store, env: Record<string, string>): Promise<Pair> {
  const a = await startServer({ ...RELAXED, ...store.env, ...env });
  const b = await startServer({ ...RELAXED, ...store.env, ...env }).catch(async (error) => {
    await a[Symbol.asyncDispose]();
    throw error;
  });
  return {
    a,
    b,
    async [Symbol.asyncDispose]() {
      await b[Symbol.asyncDispose]();
      await a[Symbol.asyncDispose]();
    },
  };
}

/** Opens a named chat socket with a token for `sub` and `name`. */
async function open(server: TestServer, sub: string, name: string): Promise<TestClient> {
  const jwt = encodeURIComponent(await token(sub, name));
  return await TestClient.connect(server.url(`/ws/chat/${sub}?token=${jwt}`));
}

const ENGINES = [
  { name: "kv", store: kvStore, ignore: false },
  { name: "redis", store: redisStore, ignore: ignoreRedis },
];

for (const engine of ENGINES) {
  Deno.test({
    name: `${engine.name}: another user's token cannot take a name online on another process`,
    ignore: engine.ignore,
  }, async (t) => {
    await using store = await engine.store();
    await using pair = await startPair(store, { AUTH_SECRET: SECRET });
    await using alice = await open(pair.a, "id-alice", "Alice");
    await alice.next(welcome);

    for (const name of ["Alice", "ALICE", "\uFF21lice"]) {
      await t.step(
        `another sub asking for ${JSON.stringify(name)} is closed with 4009`,
        async () => {
          await using mallory = await open(pair.b, "id-mallory", name);
          await eventually(
            "a close or a welcome",
            () => mallory.closeInfo !== undefined || mallory.frames.some(welcome),
          );
          assert.ok(!mallory.frames.some(welcome), "admitted");
          assert.deepEqual(mallory.closeInfo, { code: 4009, reason: "Username already in use" });
        },
      );
    }
    await t.step("the same user's other tab on the other process is admitted", async () => {
      await using tab = await open(pair.b, "id-alice", "Alice");
      assert.equal((await tab.next(welcome)).username, "Alice");
      await using bob = await open(pair.b, "id-bob", "Bob");
      await bob.next(welcome);
      bob.sendJson({ type: "private", to: "alice", message: "to both tabs" });
      for (const c of [alice, tab]) await c.next((f) => f.message === "to both tabs");
    });
  });

  Deno.test({
    name:
      `${engine.name}: a private message to a decomposed name reaches the user on another process`,
    ignore: engine.ignore,
  }, async () => {
    await using store = await engine.store();
    await using pair = await startPair(store, {});
    await using jose = await TestClient.connect(pair.a.url("/ws/chat/Jos%C3%A9"));
    await jose.next(welcome);
    await using bob = await TestClient.connect(pair.b.url("/ws/chat/bob"));
    await bob.next(welcome);
    bob.sendJson({ type: "private", to: "Jose\u0301", message: "decomposed" });
    const got = await jose.next((f) => f.type === "private" && f.message === "decomposed");
    assert.equal(got.to, "José");
    bob.sendJson({ type: "private", to: "\uFF2A\uFF2F\uFF33\uFF25\u0301", message: "fullwidth" });
    await jose.next((f) => f.type === "private" && f.message === "fullwidth");
    assert.equal(bob.frames.filter((f) => f.type === "error").length, 0);
  });
}
