/**
 * The environment that starts the app on each engine, for tests that run
 * one scenario on memory, kv and redis alike.
 *
 * ```ts
 * for (const name of ENGINE_NAMES) {
 *   await t.step(name, async () => {
 *     await using store = await engineEnv(name);
 *     await using server = await startServer({ ...store.env, MAX_CONNECTIONS_PER_IP: "20" });
 *   });
 * }
 * ```
 *
 * @module
 */

import { startRedis } from "./redis_server.ts";

/** The engines every such test runs on. */
export const ENGINE_NAMES = ["memory", "kv", "redis"] as const;

/** The store behind one engine: its environment, removed on dispose. */
export interface EngineEnv extends AsyncDisposable {
  /** CHAT_ENGINE and what that engine needs (KV_PATH, REDIS_URL). */
  env: Record<string, string>;
  /** The Redis URL for the redis engine, otherwise undefined. */
  redisUrl?: string;
  /** The KV file for the kv engine, otherwise undefined. */
  kvPath?: string;
}

/** Starts a fresh store for `engine`: a temporary KV file or a new redis-server. */
export async function engineEnv(engine: typeof ENGINE_NAMES[number]): Promise<EngineEnv> {
  if (engine === "kv") {
    const dir = await Deno.makeTempDir({ prefix: "chat_engine_env_" });
    const kvPath = `${dir}/chat.kv`;
    return {
      env: { CHAT_ENGINE: "kv", KV_PATH: kvPath },
      kvPath,
      [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
    };
  }
  if (engine === "redis") {
    const redis = await startRedis();
    return {
      env: { CHAT_ENGINE: "redis", REDIS_URL: redis.url },
      redisUrl: redis.url,
      [Symbol.asyncDispose]: () => redis[Symbol.asyncDispose](),
    };
  }
  return { env: { CHAT_ENGINE: "memory" }, [Symbol.asyncDispose]: () => Promise.resolve() };
}
