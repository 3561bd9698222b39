/**
 * The presence part of the redis engine: sorted sets scored with an expiry
 * in Redis time, refreshed by each process for its own members, so a
 * crashed process's users vanish within the TTL.
 *
 * @module
 */

import type { Logger } from "../logger.ts";
import { nameKey } from "../names.ts";
import type { Holder, Presence } from "./engine.ts";
import type { RedisClient } from "./redis_client.ts";
import { loadScript, runScript, script } from "./redis_scripts.ts";

const TOUCH_SCRIPT = script(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  redis.call('ZADD', key, now + ttl, ARGV[i + 1])
  redis.call('PEXPIRE', key, ttl * 2)
end
return #KEYS
`);

const LIVE_SCRIPT = script(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
`);

// Refreshes are sent in batches so one command never carries every member.
const BATCH = 500;

/** Options of {@linkcode RedisPresence}. */
export interface RedisPresenceOptions {
  /** The engine's command connection. */
  client: RedisClient;
  /** Prefix of every key. */
  prefix: string;
  /** Milliseconds a member lives without a refresh. */
  ttlMs: number;
  /** Told about failed writes, at debug level. */
  logger: Logger;
}

/** This process's presence members in Redis, and reads of everyone's. */
export class RedisPresence implements Presence {
  #client: RedisClient;
  #prefix: string;
  #ttlMs: number;
  #log: Logger;
  #disposed = false;
  readonly #instance = crypto.randomUUID();
  /** This process's presence members by sorted-set key and lower-cased user. */
  #members = new Map<string, Map<string, string>>();
  /** Members whose removal may not have reached Redis. */
  #removals = new Map<string, Set<string>>();

  /** Records members at once; they reach Redis while it is connected. */
  constructor(options: RedisPresenceOptions) {
    this.#client = options.client;
    this.#prefix = options.prefix;
    this.#ttlMs = options.ttlMs;
    this.#log = options.logger;
  }

  /** Computes the scripts' SHA-1s. */
  async load(): Promise<void> {
    await loadScript(TOUCH_SCRIPT);
    await loadScript(LIVE_SCRIPT);
  }

  /** Records that a user of this process entered a room. */
  join(room: string, username: string): void {
    this.#add(this.#roomKey(room), username, this.#roomMember(username));
  }

  /** Records that a user of this process left a room. */
  leave(room: string, username: string): void {
    this.#remove(this.#roomKey(room), username);
  }

  /** Records that a user connected to this process. */
  connect(username: string, userId?: string | null): void {
    this.#add(this.#onlineKey(username), username, this.#onlineMember(username, userId ?? null));
  }

  /** Records that the last connection of a user to this process closed. */
  disconnect(username: string): void {
    this.#remove(this.#onlineKey(username), username);
  }

  /** Users in a room on every process, each once. */
  async users(room: string): Promise<string[]> {
    const reply = await runScript(this.#client, LIVE_SCRIPT, [this.#roomKey(room)], []);
    const users = new Map<string, string>();
    for (const member of Array.isArray(reply) ? reply : []) {
      if (typeof member !== "string") continue;
      const [, key, name] = member.split("|");
      if (key !== undefined && name !== undefined && !users.has(key)) users.set(key, name);
    }
    return [...users.entries()].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0).map(([, n]) => n);
  }

  /** The holder of a name online on any process. */
  async lookup(username: string): Promise<Holder | undefined> {
    const key = this.#onlineKey(username.trim());
    const reply = await runScript(this.#client, LIVE_SCRIPT, [key], []);
    const member = Array.isArray(reply) ? reply[0] : undefined;
    if (typeof member !== "string") return undefined;
    const holder = member.slice(member.indexOf("|") + 1);
    const bar = holder.indexOf("|");
    // Without a second "|": a holder without a token, or a member of an older version.
    if (bar < 0) return { username: holder, userId: null };
    return { username: holder.slice(0, bar), userId: holder.slice(bar + 1) };
  }

  /** Renews this process's members and retries removals that did not arrive. */
  refresh(): void {
    if (this.#disposed || !this.#client.connected) return;
    for (const [key, members] of this.#removals) {
      const list = [...members];
      this.#client.command(["ZREM", key, ...list]).then(
        () => list.forEach((member) => this.#forget(key, member)),
        () => undefined,
      );
    }
    let keys: string[] = [];
    let args: (string | number)[] = [this.#ttlMs];
    const flush = () => {
      runScript(this.#client, TOUCH_SCRIPT, keys, args).catch((error) =>
        this.#log.debug("presence_failed", { error: String(error) })
      );
      keys = [];
      args = [this.#ttlMs];
    };
    for (const [key, members] of this.#members) {
      for (const member of members.values()) {
        keys.push(key);
        args.push(member);
        if (keys.length >= BATCH) flush();
      }
    }
    if (keys.length > 0) flush();
  }

  /** Stops recording; the commands that remove this process's members. */
  dispose(): (string | number)[][] {
    this.#disposed = true;
    const commands: (string | number)[][] = [];
    for (const map of [this.#members, this.#removals]) {
      for (const [key, members] of map) commands.push(["ZREM", key, ...members.values()]);
    }
    this.#members.clear();
    this.#removals.clear();
    return commands;
  }

  #roomKey(room: string): string {
    return `${this.#prefix}presence:${room}`;
  }

  #onlineKey(username: string): string {
    return `${this.#prefix}online:${nameKey(username)}`;
  }

  // Names cannot contain "|", so members split unambiguously.
  #roomMember(username: string): string {
    return `${this.#instance}|${nameKey(username)}|${username}`;
  }

  /** `instance|name`, then `|userId` for a verified holder (a user id may contain "|"). */
  #onlineMember(username: string, userId: string | null): string {
    const member = `${this.#instance}|${username}`;
    return userId === null ? member : `${member}|${userId}`;
  }

  #add(key: string, username: string, member: string): void {
    if (this.#disposed) return;
    let map = this.#members.get(key);
    if (map === undefined) this.#members.set(key, map = new Map());
    const user = nameKey(username);
    const old = map.get(user);
    map.set(user, member);
    if (old !== undefined && old !== member) this.#remove(key, old, old);
    this.#forget(key, member);
    if (!this.#client.connected) return;
    runScript(this.#client, TOUCH_SCRIPT, [key], [this.#ttlMs, member]).catch((error) =>
      this.#log.debug("presence_failed", { error: String(error) })
    );
  }

  /** Removes the user's member, or the given stale one. */
  #remove(key: string, username: string, stale?: string): void {
    if (this.#disposed) return;
    const map = this.#members.get(key);
    const user = nameKey(username);
    const member = stale ?? map?.get(user);
    if (member === undefined) return;
    if (stale === undefined && map?.delete(user) && map.size === 0) {
      this.#members.delete(key);
    }
    let removals = this.#removals.get(key);
    if (removals === undefined) this.#removals.set(key, removals = new Set());
    removals.add(member);
    if (!this.#client.connected) return;
    this.#client.command(["ZREM", key, member]).then(
      () => this.#forget(key, member),
      (error) => this.#log.debug("presence_failed", { error: String(error) }),
    );
  }

  #forget(key: string, member: string): void {
    const removals = this.#removals.get(key);
    if (removals?.delete(member) && removals.size === 0) this.#removals.delete(key);
  }
}
