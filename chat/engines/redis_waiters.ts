/**
 * Publishes waiting until their publication was handed on by this process,
 * so a publish resolves after local members got it (a notice reaches them
 * before, say, their sockets are closed).
 *
 * @module
 */

/** Waiting publishes by channel, in offset order. */
export class Waiters {
  #lists = new Map<string, { id: number; resolve: () => void }[]>();

  /** Whether any publish waits. */
  get size(): number {
    return this.#lists.size;
  }

  /** Resolves once {@linkcode Waiters.release} reaches `id` on the channel. */
  wait(channel: string, id: number): Promise<void> {
    const { promise, resolve } = Promise.withResolvers<void>();
    let list = this.#lists.get(channel);
    if (list === undefined) this.#lists.set(channel, list = []);
    // Replies come in offset order, so this is almost always an append.
    let at = list.length;
    while (at > 0 && list[at - 1]!.id > id) at--;
    list.splice(at, 0, { id, resolve });
    return promise;
  }

  /** Resolves the waiting publishes of a channel up to `id`, or all of them. */
  release(channel: string, id = Infinity): void {
    const list = this.#lists.get(channel);
    if (list === undefined) return;
    let n = 0;
    while (n < list.length && list[n]!.id <= id) list[n++]!.resolve();
    if (n === list.length) this.#lists.delete(channel);
    else if (n > 0) list.splice(0, n);
  }

  /** Resolves every waiting publish. */
  releaseAll(): void {
    for (const channel of [...this.#lists.keys()]) this.release(channel);
  }
}
