import assert from "node:assert/strict";
import { LatencyHistogram, medianInterval, pairBootstrap, pooledQuantile } from "../bench/stats.ts";

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

Deno.test("a pooled quantile is the quantile of every window's samples together", () => {
  const early = new LatencyHistogram();
  const late = new LatencyHistogram();
  for (let ms = 1; ms <= 100; ms++) early.record(ms);
  for (let ms = 101; ms <= 200; ms++) late.record(ms);
  const near = (value: number, expected: number) =>
    assert.ok(Math.abs(value / expected - 1) <= 0.011, `${value} is not within 1 % of ${expected}`);
  near(pooledQuantile([early.toJSON(), late.toJSON()], 0.5), 100);
  near(pooledQuantile([early.toJSON(), late.toJSON()], 0.99), 198);
  near(pooledQuantile([late.toJSON()], 0.5), 150);
  assert.ok(Number.isNaN(pooledQuantile([], 0.99)));
});

Deno.test("the pair bootstrap resamples whole pairs, reproducibly", async (t) => {
  const values = Array.from({ length: 20 }, (_, i) => i + 1);
  const mean = (indices: readonly number[]) =>
    indices.reduce((sum, i) => sum + values[i]!, 0) / indices.length;
  await t.step(
    "the interval holds the statistic of the whole sample and is narrower than the data",
    () => {
      const r = pairBootstrap(values.length, mean);
      assert.equal(r.coverage, 0.9);
      assert.ok(r.low < 10.5 && 10.5 < r.high, `${r.low}–${r.high}`);
      // The mean of 20 values spread 1..20 has a standard error near 1.3.
      assert.ok(r.low > 7 && r.high < 14, `${r.low}–${r.high}`);
    },
  );
  await t.step("one seed gives one interval; another seed another", () => {
    assert.deepEqual(pairBootstrap(values.length, mean), pairBootstrap(values.length, mean));
    assert.notDeepEqual(
      pairBootstrap(values.length, mean, { seed: 2 }),
      pairBootstrap(values.length, mean, { seed: 3 }),
    );
  });
  await t.step("a wider coverage gives a wider interval", () => {
    const narrow = pairBootstrap(values.length, mean, { coverage: 0.5 });
    const wide = pairBootstrap(values.length, mean, { coverage: 0.99 });
    assert.ok(wide.low < narrow.low && narrow.high < wide.high);
  });
  await t.step("no pairs, or a statistic that is never finite, gives NaN", () => {
    assert.ok(Number.isNaN(pairBootstrap(0, mean).low));
    assert.ok(Number.isNaN(pairBootstrap(5, () => NaN).high));
  });
});
