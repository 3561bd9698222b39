/**
 * Lua scripts and reply parsing shared by the parts of the redis engine.
 *
 * @module
 */

import type { RedisClient } from "./redis_client.ts";
import { RedisError, type RedisReply } from "./redis_resp.ts";

/** A Lua script and its SHA-1 once known. */
export interface Script {
  /** The Lua source. */
  source: string;
  /** Its SHA-1 in hex, once computed. */
  sha: string | undefined;
}

/** A script whose SHA-1 is computed by {@linkcode loadScript}. */
export function script(source: string): Script {
  return { source, sha: undefined };
}

/** Computes the script's SHA-1, for EVALSHA. */
export async function loadScript(s: Script): Promise<void> {
  const digest = await crypto.subtle.digest("SHA-1", new TextEncoder().encode(s.source));
  s.sha = [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Runs a script by its SHA-1, sending the source when Redis does not have it. */
export async function runScript(
  client: RedisClient,
  s: Script,
  keys: string[],
  args: (string | number)[],
): Promise<RedisReply> {
  if (s.sha !== undefined) {
    try {
      return await client.command(["EVALSHA", s.sha, keys.length, ...keys, ...args]);
    } catch (error) {
      // A restarted Redis has an empty script cache.
      if (!(error instanceof RedisError && error.code === "NOSCRIPT")) throw error;
    }
  }
  return await client.command(["EVAL", s.source, keys.length, ...keys, ...args]);
}

/** One stream entry or pub/sub message: its entry id ("" when ephemeral), channel and payload. */
export interface Entry {
  /** The stream entry id; empty for an ephemeral message. */
  id: string;
  /** The engine channel. */
  channel: string;
  /** As published. */
  payload: string;
  /** When it was stored, in ms on the publisher's clock; NaN when unknown. */
  time: number;
}

/**
 * Stream entries of an XRANGE/XREVRANGE reply. Entries without a payload
 * field are an older version's frames: left out.
 */
export function parseEntries(reply: RedisReply | undefined, channel: string): Entry[] {
  const entries: Entry[] = [];
  if (!Array.isArray(reply)) return entries;
  for (const item of reply) {
    if (!Array.isArray(item)) continue;
    const [id, fields] = item;
    if (typeof id !== "string" || !Array.isArray(fields)) continue;
    let payload: string | undefined;
    let time = NaN;
    for (let i = 0; i + 1 < fields.length; i += 2) {
      const value = fields[i + 1];
      if (typeof value !== "string") continue;
      if (fields[i] === "p") payload = value;
      else if (fields[i] === "t") time = Number(value);
    }
    if (payload !== undefined) entries.push({ id, channel, payload, time });
  }
  return entries;
}

/** Splits a pub/sub message `<entry id>\n<channel>\n<payload>`; the id is empty when ephemeral. */
export function parseMessage(message: string): Entry | undefined {
  const a = message.indexOf("\n");
  const b = message.indexOf("\n", a + 1);
  if (a < 0 || b < 0) return undefined;
  return {
    id: message.slice(0, a),
    channel: message.slice(a + 1, b),
    payload: message.slice(b + 1),
    time: NaN,
  };
}

/** The offset of a stream entry id `<offset>-0`. */
export function entryNumber(id: string): number {
  return Number(id.slice(0, id.indexOf("-")));
}

/** Orders stream entry ids `<ms>-<seq>`. */
export function compareIds(a: string, b: string): number {
  const da = a.indexOf("-");
  const db = b.indexOf("-");
  const ms = Number(a.slice(0, da)) - Number(b.slice(0, db));
  if (ms !== 0) return ms;
  return Number(a.slice(da + 1)) - Number(b.slice(db + 1));
}
