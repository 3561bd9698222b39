/**
 * A typed event emitter: one listener set per event name, listeners called
 * in the order they were added, an exception in one kept from the others.
 *
 * @module
 */

/** Removes the listener it was returned for. */
export type Unsubscribe = () => void;

/** Emits the events of a map from event names to payload types. */
export class Emitter<Events extends object> {
  #listeners = new Map<keyof Events, Set<(payload: never) => void>>();

  /** Calls `listener` with every `type` event until the returned function is called. */
  on<K extends keyof Events>(type: K, listener: (payload: Events[K]) => void): Unsubscribe {
    let set = this.#listeners.get(type);
    if (set === undefined) {
      set = new Set();
      this.#listeners.set(type, set);
    }
    const entry = listener as (payload: never) => void;
    set.add(entry);
    return () => set.delete(entry);
  }

  /** Calls the listeners of `type`; one that throws is reported and the others still run. */
  emit<K extends keyof Events>(type: K, payload: Events[K]): void {
    const set = this.#listeners.get(type);
    if (set === undefined) return;
    for (const listener of [...set]) {
      try {
        (listener as (payload: Events[K]) => void)(payload);
      } catch (error) {
        // A listener's bug must not stop the client: report it as an uncaught error would be.
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }
}
