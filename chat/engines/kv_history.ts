/**
 * Reading a channel's stored publications from Deno KV: the history half of
 * the kv engine (its keys are in kv_follow.ts).
 *
 * @module
 */

import type { HistoryPage, HistoryQuery, Publication } from "./engine.ts";
import { headKey, headOf, msgKey, msgPrefix, type Stored } from "./kv_follow.ts";

/** What a read needs besides the query. */
export interface ReadOptions {
  /** Publications served per channel: older ones are not, though still stored until trimmed. */
  limit: number;
  /** Publications stored before this time (ms) are not served; -Infinity for no limit. */
  oldest: number;
  /** The store's epoch, for the page's position. */
  epoch: string;
}

/** Reads a page of a channel's stored payloads, oldest first; those past the limit or the TTL are not served. */
export async function readHistory(
  kv: Deno.Kv,
  channel: string,
  query: HistoryQuery,
  options: ReadOptions,
): Promise<HistoryPage> {
  const head = headOf(await kv.get(headKey(channel))).id;
  const position = { offset: head, epoch: options.epoch };
  const floor = Math.max(0, head - options.limit);
  const limit = Math.max(0, Math.floor(query.limit));
  if (query.after === undefined) {
    const end = Math.min(query.before ?? Infinity, head + 1);
    if (limit === 0 || end <= floor + 1) return { publications: [], position, complete: true };
    const iter = kv.list<Stored>({
      start: msgKey(channel, floor + 1),
      end: msgKey(channel, end),
    }, { reverse: true, limit });
    const publications = (await collect(iter, options.oldest, Infinity)).reverse();
    return { publications, position, complete: true };
  }
  const after = Math.max(0, Math.floor(query.after));
  // An `after` beyond the head comes from a previous life of the store.
  if (after > head) return { publications: [], position, complete: false };
  let publications: Publication[] = [];
  const end = query.before ?? Infinity;
  if (limit > 0 && end > Math.max(after, floor) + 1) {
    const iter = kv.list<Stored>({
      prefix: msgPrefix(channel),
      start: msgKey(channel, Math.max(after, floor) + 1),
    }, { limit });
    publications = await collect(iter, options.oldest, end);
  }
  const first = publications[0]?.offset ?? head + 1;
  const complete = after >= floor && (first === after + 1 || after === head);
  return { publications, position, complete };
}

/** The fresh publications of a listing, below `end`. */
async function collect(
  iter: Deno.KvListIterator<Stored>,
  oldest: number,
  end: number,
): Promise<Publication[]> {
  const publications: Publication[] = [];
  for await (const entry of iter) {
    const offset = entry.key[3] as number;
    if (offset >= end) break;
    // A value of another layout is an older version's frame: not served.
    if (typeof entry.value?.p !== "string" || entry.value.t < oldest) continue;
    publications.push({ offset, payload: entry.value.p });
  }
  return publications;
}
