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

  /** The id of the newest frame appended; 0 before the first. */
  get head(): number {
    return this.#head;
  }

  /** How many frames are kept. */
  get count(): number {
    return this.#count;
  }

  /** Bytes of JSON kept. */
  get byteLength(): number {
    return this.#end - this.#tail;
  }

  /** Appends the frame whose id is `head + 1`, given as its JSON text. */
  append(text: string): void {
    const id = ++this.#head;
    if (this.#limit === 0) return;
    if (this.#count === this.#limit) {
      this.#count--;
      this.#tail = this.#count === 0
        ? this.#end
        : this.#starts[(id - this.#count) % this.#starts.length]!;
    }
    if (this.#count === this.#starts.length) this.#growSlots(id - 1);
    if (scratch.length < text.length * 3) {
      scratch = new Uint8Array(powerOfTwoAtLeast(text.length * 3));
    }
    const n = encoder.encodeInto(text, scratch).written;
    if (this.#end - this.#tail + n > this.#bytes.length) this.#growBytes(n);
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

  /** Doubles the index, keeping the slots of frames up to `newest`. */
  #growSlots(newest: number): void {
    const old = this.#starts;
    const slots = new Array<number>(Math.min(this.#limit, Math.max(MIN_SLOTS, old.length * 2)))
      .fill(0);
    for (let id = newest - this.#count + 1; id <= newest; id++) {
      slots[id % slots.length] = old[id % old.length]!;
    }
    this.#starts = slots;
  }

  /** Resizes the buffer to fit `extra` more bytes, with the kept bytes from index 0. */
  #growBytes(extra: number): void {
    const old = this.#bytes;
    const live = this.#end - this.#tail;
    const bytes = new Uint8Array(
      Math.max(MIN_BYTES, old.length * 2, powerOfTwoAtLeast(live + extra)),
    );
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
