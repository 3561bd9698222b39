/**
 * SQLite's "database is locked": handles on one local KV file (the workers
 * of `deno serve --parallel`) get it when they write at the same moment, and
 * Deno KV does not wait for the lock itself. It passes when retried.
 *
 * @module
 */

/** Whether an error is the transient "database is locked". */
export function isLocked(error: unknown): boolean {
  return error instanceof Error && /database is locked|database is busy/i.test(error.message);
}

/** Waits before retry number `attempt` (from 0): longer each time, with jitter. */
export function lockPause(attempt: number): Promise<void> {
  const ms = Math.min(50, 1 + attempt * 2) * (0.5 + Math.random());
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Tries before a "database is locked" is given up on. */
const LOCK_ATTEMPTS = 50;

/** Runs `fn`, again after a pause each time it fails with "database is locked". */
export async function retryLocked<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 0;; attempt++) {
    try {
      return await fn();
    } catch (error) {
      if (!isLocked(error) || attempt >= LOCK_ATTEMPTS) throw error;
      await lockPause(attempt);
    }
  }
}

/**
 * Commits; null when another handle held the SQLite write lock, after a
 * short pause (Deno KV does not wait for the lock itself).
 */
export async function tryCommit(
  op: Deno.AtomicOperation,
  attempt: number,
): Promise<Deno.KvCommitResult | Deno.KvCommitError | null> {
  try {
    return await op.commit();
  } catch (error) {
    if (!isLocked(error)) throw error;
    await lockPause(attempt);
    return null;
  }
}
