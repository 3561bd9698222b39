/**
 * A bounded log of one channel's frames, kept as UTF-8 JSON in one circular
 * byte buffer.
 *
 * Why bytes and not the frame objects: a busy room's recent frames outlive
 * V8's young-generation collections, so each scavenge copies them, promotes
 * them, and grows the new space to make room; every pause gets longer and
 * shows at the tail of the latency. Bytes in an ArrayBuffer live outside the
 * JS heap, so storing a frame leaves nothing young behind. Reading one costs
 * a decode and a parse, which only joins, resumes and the history API pay.
 * The p99 of `deno task bench --only=paced64,paced256` guards it.
 *
 * @module
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The smallest byte buffer; it doubles as needed, to a power of two that fits. */
const MIN_BYTES = 256;
/** The smallest index, in frames; it doubles up to the limit. */
const MIN_SLOTS = 8;

/** Shared by every log: encoding needs room for the worst case, 3 bytes per UTF-16 unit. */
let scratch = new Uint8Array(4096);

function powerOfTwoAtLeast(n: number): number {
  return 2 ** Math.ceil(Math.log2(Math.max(1, n)));
}

/** The newest `limit` frames of a channel, whose ids are consecutive. */
export class FrameLog {
  #limit: number;
  #head = 0;
  #count = 0;
  /**
   * Where each kept frame starts, as a position in the byte stream; slot
   * `id % length`. A plain array (V8 stores its numbers unboxed), not a
   * second ArrayBuffer: every ArrayBuffer costs native memory beyond its
   * bytes, which each quiet room would pay. The RSS per connection of
   * `deno task bench --only=idle` (10 connections per room) guards it.
   */
  #starts: number[] = [];
  #bytes = new Uint8Array(0);
  /** Stream positions of the oldest kept byte and one past the newest. */
  #tail = 0;
  #end = 0;
  /** The stream position at index 0 of `#bytes` when it was last resized. */
  #base = 0;

  /** Creates a log that keeps the newest `limit` frames; 0 keeps none but still counts ids. */
  constructor(limit: number) {
    if (!Number.isInteger(limit) || limit < 0) {
      throw new RangeError(`Limit must be a non-negative integer: ${limit}`);
    }
    this.#limit = limit;
  }

  /** The id of the newest frame appended; 0 before the first. Dropping frames keeps it. */
  get head(): number {
    return this.#head;
  }

  /** How many frames are kept: ids `head - count + 1` to `head`. */
  get count(): number {
    return this.#count;
  }

  /** Bytes of JSON kept. */
  get byteLength(): number {
    return this.#end - this.#tail;
  }

  /**
   * Bytes the buffer has room for. It shrinks as {@linkcode FrameLog.dropOldest}
   * empties it, so evicted frames give their memory back.
   */
  get capacity(): number {
    return this.#bytes.length;
  }

  /** Appends the frame whose id is `head + 1`, given as its JSON text. */
  append(text: string): void {
    if (this.#limit === 0) {
      this.#head++;
      return;
    }
    if (this.#count === this.#limit) this.#drop();
    if (this.#count === this.#starts.length) {
      this.#resizeSlots(Math.min(this.#limit, Math.max(MIN_SLOTS, this.#starts.length * 2)));
    }
    const id = ++this.#head;
    if (scratch.length < text.length * 3) {
      scratch = new Uint8Array(powerOfTwoAtLeast(text.length * 3));
    }
    const n = encoder.encodeInto(text, scratch).written;
    const live = this.#end - this.#tail;
    if (live + n > this.#bytes.length) {
      this.#resizeBytes(Math.max(MIN_BYTES, this.#bytes.length * 2, powerOfTwoAtLeast(live + n)));
    }
    const bytes = this.#bytes;
    const at = (this.#end - this.#base) % bytes.length;
    const first = Math.min(n, bytes.length - at);
    bytes.set(scratch.subarray(0, first), at);
    // A frame that reaches the end of the buffer continues at its start.
    if (first < n) bytes.set(scratch.subarray(first, n), 0);
    this.#starts[id % this.#starts.length] = this.#end;
    this.#end += n;
    this.#count++;
  }

  /**
   * Drops the oldest kept frame, as the limit would, and returns its bytes;
   * 0 when none is kept. The head stays, so the next append goes on from
   * it. A buffer left a quarter full or less is halved or more, so what is
   * dropped is freed rather than kept as room.
   */
  dropOldest(): number {
    if (this.#count === 0) return 0;
    const freed = this.#drop();
    if (this.#count === 0) {
      // An empty log holds no buffers; an append allocates them again.
      this.#starts = [];
      this.#resizeBytes(0);
      return freed;
    }
    if (this.#starts.length > MIN_SLOTS && this.#count * 4 <= this.#starts.length) {
      this.#resizeSlots(Math.max(MIN_SLOTS, powerOfTwoAtLeast(this.#count * 2)));
    }
    const live = this.#end - this.#tail;
    if (this.#bytes.length > MIN_BYTES && live * 4 <= this.#bytes.length) {
      this.#resizeBytes(Math.max(MIN_BYTES, powerOfTwoAtLeast(live * 2)));
    }
    return freed;
  }

  /** The JSON text of frame `id`, or undefined when it is not kept. */
  text(id: number): string | undefined {
    if (id > this.#head || id <= this.#head - this.#count || !Number.isInteger(id)) {
      return undefined;
    }
    const slots = this.#starts;
    const start = slots[id % slots.length]!;
    const end = id === this.#head ? this.#end : slots[(id + 1) % slots.length]!;
    const bytes = this.#bytes;
    const n = end - start;
    const at = (start - this.#base) % bytes.length;
    if (at + n <= bytes.length) return decoder.decode(bytes.subarray(at, at + n));
    const joined = new Uint8Array(n);
    joined.set(bytes.subarray(at));
    joined.set(bytes.subarray(0, n - (bytes.length - at)), bytes.length - at);
    return decoder.decode(joined);
  }

  /** Forgets the oldest kept frame (there is one) and returns its bytes. */
  #drop(): number {
    const tail = this.#tail;
    this.#count--;
    // The new oldest frame is `head - count + 1`; with none left the log is empty at its end.
    this.#tail = this.#count === 0
      ? this.#end
      : this.#starts[(this.#head - this.#count + 1) % this.#starts.length]!;
    return this.#tail - tail;
  }

  /** Re-indexes the kept frames into `length` slots (at least `count`). */
  #resizeSlots(length: number): void {
    const old = this.#starts;
    const slots = new Array<number>(length).fill(0);
    for (let id = this.#head - this.#count + 1; id <= this.#head; id++) {
      slots[id % length] = old[id % old.length]!;
    }
    this.#starts = slots;
  }

  /** Moves the kept bytes to index 0 of a new buffer of `length` bytes (at least the kept ones). */
  #resizeBytes(length: number): void {
    const old = this.#bytes;
    const live = this.#end - this.#tail;
    const bytes = new Uint8Array(length);
    if (live > 0) {
      const at = (this.#tail - this.#base) % old.length;
      const first = Math.min(live, old.length - at);
      bytes.set(old.subarray(at, at + first), 0);
      if (first < live) bytes.set(old.subarray(0, live - first), first);
    }
    this.#bytes = bytes;
    this.#base = this.#tail;
  }
}
