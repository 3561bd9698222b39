import assert from "node:assert/strict";
import { medianInterval } from "../bench/stats.ts";

Deno.test("median interval takes order statistics by their binomial coverage", async (t) => {
  await t.step("7 values: second smallest to second largest, 87.5 %", () => {
    assert.deepEqual(medianInterval([7, 1, 6, 2, 5, 3, 4]), { low: 2, high: 6, coverage: 0.875 });
  });
  await t.step("3 values: too few for 80 %, so the whole range at 75 %", () => {
    assert.deepEqual(medianInterval([3, 1, 2]), { low: 1, high: 3, coverage: 0.75 });
  });
  await t.step("11 values at 90 %: third to ninth", () => {
    const r = medianInterval(Array.from({ length: 11 }, (_, i) => 11 - i), 0.9);
    assert.equal(r.low, 3);
    assert.equal(r.high, 9);
    assert.ok(Math.abs(r.coverage - (1 - 2 * 67 / 2048)) < 1e-12, `coverage: ${r.coverage}`);
  });
  await t.step("non-finite values are left out; none at all gives NaN", () => {
    assert.deepEqual(medianInterval([NaN, 2, Infinity, 1, 3]), { low: 1, high: 3, coverage: 0.75 });
    const empty = medianInterval([NaN]);
    assert.ok(Number.isNaN(empty.low) && Number.isNaN(empty.high));
    assert.equal(empty.coverage, 0);
  });
});
