/**
 * Polling for tests that wait on something with no event to await.
 *
 * @module
 */

/** Options of {@linkcode eventually}. */
export interface EventuallyOptions {
  /** How long to wait before failing. Default 10000. */
  timeoutMs?: number;
  /** How often to check. Default 10. */
  intervalMs?: number;
}

/** Polls until `condition` holds; rejects naming `what` after the timeout. */
export async function eventually(
  what: string,
  condition: () => boolean | Promise<boolean>,
  options: EventuallyOptions = {},
): Promise<void> {
  const deadline = Date.now() + (options.timeoutMs ?? 10_000);
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 10));
  }
}
