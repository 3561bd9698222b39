/**
 * Parses `redis://` and `rediss://` URLs into connection settings.
 *
 * @module
 */

/** Connection settings parsed from a `redis://` or `rediss://` URL. */
export interface RedisUrlOptions {
  /** Host name or IP address (IPv6 addresses keep their brackets). */
  hostname: string;
  /** TCP port; 6379 when the URL has none. */
  port: number;
  /** True for `rediss://`. */
  tls: boolean;
  /** ACL user name, if the URL has one. */
  username?: string;
  /** Password, if the URL has one. */
  password?: string;
  /** Database index from the path; 0 when the URL has none. */
  db: number;
}

/** Default Redis port. */
export const DEFAULT_PORT = 6379;

/** Default Redis host. */
export const DEFAULT_HOSTNAME = "127.0.0.1";

/**
 * Parses `redis://[user:pass@]host[:port][/db]` and `rediss://` (TLS) URLs.
 *
 * @throws {TypeError} when the URL is malformed; the message shows the URL
 * with its password masked.
 */
export function parseRedisUrl(url: string): RedisUrlOptions {
  const invalid = () => new TypeError(`Invalid Redis URL: ${maskUrl(url)}`);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw invalid();
  }
  if (parsed.protocol !== "redis:" && parsed.protocol !== "rediss:") throw invalid();
  // Non-special schemes keep an empty host for "redis:host" style input.
  if (parsed.hostname === "" || parsed.search !== "" || parsed.hash !== "") throw invalid();
  const port = parsed.port === "" ? DEFAULT_PORT : Number(parsed.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw invalid();
  const path = parsed.pathname.replace(/^\//, "");
  if (path !== "" && !/^\d{1,5}$/.test(path)) throw invalid();
  const options: RedisUrlOptions = {
    hostname: parsed.hostname,
    port,
    tls: parsed.protocol === "rediss:",
    db: path === "" ? 0 : Number(path),
  };
  try {
    if (parsed.username !== "") options.username = decodeURIComponent(parsed.username);
    if (parsed.password !== "") options.password = decodeURIComponent(parsed.password);
  } catch {
    throw invalid();
  }
  return options;
}

/** Hides the password of a URL so it can appear in error messages and logs. */
export function maskUrl(url: string): string {
  return url.replace(/^([^:/?#]*:\/\/[^:@/?#]*):[^@/?#]*@/, "$1:***@");
}

/** Why {@linkcode parseRedisUrls} refused a list: one entry and what is wrong with it. */
export class RedisUrlListError extends TypeError {
  /** The offending entry, its password masked (the whole list when an entry is empty). */
  readonly entry: string;
  /** True when the entry names a Redis an earlier entry names already. */
  readonly duplicate: boolean;

  /** An error naming the entry. */
  constructor(entry: string, duplicate: boolean) {
    super(`${duplicate ? "Duplicate" : "Invalid"} Redis URL: ${entry}`);
    this.name = "RedisUrlListError";
    this.entry = entry;
    this.duplicate = duplicate;
  }
}

/**
 * Splits a comma-separated list of Redis URLs (the shards, in order) and
 * checks each with {@linkcode parseRedisUrl}. Two entries naming the same
 * host, port and database are refused: a Redis listed twice would shift
 * every later shard's channels and hold twice its share.
 *
 * @throws {RedisUrlListError} naming the first malformed or repeated entry.
 */
export function parseRedisUrls(list: string): string[] {
  const urls = list.split(",").map((entry) => entry.trim());
  const seen = new Set<string>();
  for (const url of urls) {
    if (url === "") throw new RedisUrlListError(urls.map(maskUrl).join(","), false);
    let options: RedisUrlOptions;
    try {
      options = parseRedisUrl(url);
    } catch {
      throw new RedisUrlListError(maskUrl(url), false);
    }
    // Credentials and TLS do not make another server: the address and database do.
    const key = `${options.hostname.toLowerCase()}:${options.port}/${options.db}`;
    if (seen.has(key)) throw new RedisUrlListError(maskUrl(url), true);
    seen.add(key);
  }
  return urls;
}
