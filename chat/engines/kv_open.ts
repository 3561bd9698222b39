/**
 * Opening the kv engine's database: the file (its folder created) or the
 * platform's, and the epoch stored in it.
 *
 * @module
 */

import { newEpoch } from "./engine.ts";
import { ROOT } from "./kv_follow.ts";
import { retryLocked } from "./kv_lock.ts";

const EPOCH_KEY: Deno.KvKey = [ROOT, "epoch"];

function dirname(path: string): string {
  const i = Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"));
  return i <= 0 ? (i === 0 ? "/" : ".") : path.slice(0, i);
}

/**
 * Opens the KV file at `path`, creating its folder; an empty path opens the
 * platform default of `Deno.openKv()` (the database of a Deno Deploy app).
 */
export async function openKv(path: string): Promise<Deno.Kv> {
  if (path === "") return await Deno.openKv();
  await Deno.mkdir(dirname(path), { recursive: true });
  // Workers of `deno serve --parallel` open the file at once and may
  // find it locked while another one sets it up.
  return await retryLocked(() => Deno.openKv(path));
}

/** The stored epoch, created when absent (a new or wiped database). */
export async function readEpoch(kv: Deno.Kv): Promise<string> {
  for (;;) {
    const entry = await kv.get<string>(EPOCH_KEY);
    if (typeof entry.value === "string") return entry.value;
    // A failed check means another process set it: read it on the next turn.
    await retryLocked(() =>
      kv.atomic().check({ key: EPOCH_KEY, versionstamp: null }).set(EPOCH_KEY, newEpoch()).commit()
    );
  }
}
