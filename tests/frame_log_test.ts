import assert from "node:assert/strict";
import { FrameLog } from "../chat/engines/frame_log.ts";

/** A deterministic generator, so a failure can be replayed. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const ALPHABET = ["a", "b", "é", "中", "😀", '"', "\\", " "];

function text(next: () => number, id: number): string {
  const length = Math.floor(next() ** 3 * 3000);
  let body = "";
  for (let i = 0; i < length; i++) body += ALPHABET[Math.floor(next() * ALPHABET.length)];
  return JSON.stringify({ id, body });
}

Deno.test("frame log keeps exactly the newest frames, byte for byte", async (t) => {
  for (const limit of [1, 2, 7, 8, 9, 100]) {
    await t.step(`limit ${limit}`, () => {
      const next = random(limit);
      const log = new FrameLog(limit);
      const all: string[] = [];
      for (let id = 1; id <= 600; id++) {
        const frame = text(next, id);
        log.append(frame);
        all.push(frame);
        assert.equal(log.head, id);
        assert.equal(log.count, Math.min(id, limit));
        // Every kept frame reads back as written, however the buffer wrapped or grew.
        for (let k = Math.max(1, id - limit + 1); k <= id; k++) {
          assert.equal(log.text(k), all[k - 1], `frame ${k} after appending ${id}`);
        }
        assert.equal(log.text(id - limit), undefined);
        assert.equal(log.text(id + 1), undefined);
      }
      const kept = all.slice(-limit);
      assert.equal(log.byteLength, new TextEncoder().encode(kept.join("")).length);
    });
  }
});

Deno.test("frame log with limit 0 counts ids but keeps nothing", () => {
  const log = new FrameLog(0);
  log.append('{"id":1}');
  log.append('{"id":2}');
  assert.equal(log.head, 2);
  assert.equal(log.count, 0);
  assert.equal(log.text(2), undefined);
});

Deno.test("frame log rejects a bad limit", () => {
  assert.throws(() => new FrameLog(-1), RangeError);
  assert.throws(() => new FrameLog(1.5), /Limit must be a non-negative integer: 1.5/);
});

const encoder = new TextEncoder();
const bytesOf = (s: string) => encoder.encode(s).length;

Deno.test("frame log drops its oldest frames on demand, keeping ids, texts and bytes", async (t) => {
  for (const limit of [1, 3, 8, 9, 50]) {
    await t.step(`limit ${limit}`, () => {
      const next = random(1000 + limit);
      const log = new FrameLog(limit);
      // The model: every frame appended, and the id of the oldest one kept.
      const all: string[] = [];
      let oldest = 1;
      for (let step = 0; step < 1500; step++) {
        // Runs of drops empty the log now and then; appends outnumber them.
        if (next() < 0.35) {
          const dropped = all.length >= oldest ? all[oldest - 1]! : undefined;
          assert.equal(log.dropOldest(), dropped === undefined ? 0 : bytesOf(dropped));
          if (dropped !== undefined) oldest++;
        } else {
          all.push(text(next, all.length + 1));
          log.append(all.at(-1)!);
          oldest = Math.max(oldest, all.length - limit + 1);
        }
        const head = all.length;
        assert.equal(log.head, head, `head at step ${step}`);
        assert.equal(log.count, head - oldest + 1, `count at step ${step}`);
        assert.equal(log.byteLength, bytesOf(all.slice(oldest - 1).join("")));
        for (let id = oldest; id <= head; id++) {
          assert.equal(log.text(id), all[id - 1], `frame ${id} at step ${step}`);
        }
        assert.equal(log.text(oldest - 1), undefined);
        assert.ok(log.capacity >= log.byteLength);
      }
    });
  }
});

Deno.test("frame log drops a frame that wraps around the end of its buffer and moves it", () => {
  const frame = (id: number) => `{"id":${id}}`.padEnd(100, " ");
  const log = new FrameLog(4);
  for (let id = 1; id <= 6; id++) log.append(frame(id));
  // 512 bytes hold frames 3 to 6 at stream bytes 200–600: frame 6 wraps at 512.
  assert.equal(log.capacity, 512);
  assert.equal(log.text(6), frame(6));
  assert.equal(log.dropOldest(), 100);
  assert.equal(log.dropOldest(), 100);
  assert.equal(log.capacity, 512, "half full: kept as room");
  assert.equal(log.dropOldest(), 100);
  // A quarter full or less: the wrapped frame moves to a smaller buffer.
  assert.equal(log.capacity, 256);
  assert.deepEqual([log.count, log.head, log.byteLength, log.text(6)], [1, 6, 100, frame(6)]);
  log.append(frame(7));
  assert.deepEqual([log.text(6), log.text(7)], [frame(6), frame(7)]);
});

Deno.test("frame log frees its buffer as it is emptied, and starts again at its head", () => {
  const log = new FrameLog(1000);
  const big = (id: number) => JSON.stringify({ id, body: "é".repeat(500) });
  for (let id = 1; id <= 1000; id++) log.append(big(id));
  const full = log.capacity;
  assert.ok(full >= log.byteLength && log.byteLength > 1_000_000, `capacity: ${full}`);
  while (log.count > 1) log.dropOldest();
  assert.ok(log.capacity <= 4 * log.byteLength, `capacity of one frame: ${log.capacity}`);
  assert.equal(log.text(1000), big(1000));
  assert.equal(log.dropOldest(), bytesOf(big(1000)));
  assert.deepEqual([log.count, log.byteLength, log.capacity, log.head], [0, 0, 0, 1000]);
  assert.equal(log.dropOldest(), 0, "nothing left to drop");
  log.append(big(1001));
  assert.deepEqual([log.head, log.count, log.text(1001)], [1001, 1, big(1001)]);
});

Deno.test("frame log with limit 0 has nothing to drop", () => {
  const log = new FrameLog(0);
  log.append('{"id":1}');
  assert.equal(log.dropOldest(), 0);
  assert.equal(log.head, 1);
});
