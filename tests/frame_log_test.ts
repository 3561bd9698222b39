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
