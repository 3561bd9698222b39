/**
 * Redis for tests: whether to skip a test that needs `redis-server`, and
 * the launcher the tests share with the benchmark (`tools/redis_server.ts`).
 *
 * ```ts
 * Deno.test({ name: "uses redis", ignore: ignoreRedisTests() }, async () => {
 *   await using server = await startRedis();
 *   // connect to server.url ...
 * });
 * ```
 *
 * @module
 */

import { findOnPath } from "../../tools/find_on_path.ts";
import { REDIS_BINARY } from "../../tools/redis_server.ts";

export { type RedisServer, startRedis, type StartRedisOptions } from "../../tools/redis_server.ts";

/** Skip message for tests that need redis-server. */
export const REDIS_MISSING =
  "redis-server not found; install it with: apt-get install -y redis-server";

/** Skip message for TLS tests, which also need openssl to make certificates. */
export const OPENSSL_MISSING = "openssl not found; install it with: apt-get install -y openssl";

/** Options for {@linkcode ignoreRedisTests}. */
export interface IgnoreRedisTestsOptions {
  /** The tests use `startRedis({ tls: true })` and so also need openssl. @default {false} */
  tls?: boolean;
}

const warned = new Set<string>();

/**
 * Value for a test's `ignore:`: true when redis-server (or, for TLS,
 * openssl) is missing, except under CI=true, where the test must run (and
 * fail) instead of hiding.
 */
export function ignoreRedisTests(options: IgnoreRedisTestsOptions = {}): boolean {
  if (Deno.env.get("CI") === "true") return false;
  let missing: string | undefined;
  if (findOnPath(REDIS_BINARY) === undefined) missing = REDIS_MISSING;
  else if (options.tls && findOnPath("openssl") === undefined) missing = OPENSSL_MISSING;
  if (missing === undefined) return false;
  if (!warned.has(missing)) {
    warned.add(missing);
    console.warn(missing);
  }
  return true;
}
