import assert from "node:assert/strict";
import { signJwt, type TokenClaims } from "../chat/auth/jwt.ts";
import { createTokenCheck } from "../chat/auth/token_check.ts";
import { DEFAULT_CONFIG } from "../chat/config.ts";
import { FakeClock } from "./helpers/fakes.ts";

const SECRET = "token-check-secret-0123456789abcdef";
const clock = new FakeClock(1_700_000_000_000);
const NOW = clock.now() / 1000;
const DAY = 86_400;

const sign = (claims: Record<string, unknown>) =>
  signJwt({ sub: "u-1", name: "Alice", ...claims } as TokenClaims, SECRET);

Deno.test("a token check returns who a valid token names", async () => {
  const check = createTokenCheck({ secret: SECRET, clock });
  assert.deepEqual(await check(await sign({ iat: NOW, exp: NOW + 600 })), {
    userId: "u-1",
    username: "Alice",
  });
  // An empty display name falls back to the user id.
  assert.deepEqual(await check(await sign({ name: " ", exp: NOW + 600 })), {
    userId: "u-1",
    username: "u-1",
  });
});

Deno.test("a token check refuses a missing, invalid or never expiring token", async (t) => {
  const check = createTokenCheck({ secret: SECRET, clock });
  await t.step("missing", () => assert.rejects(check(""), { message: "Missing token" }));
  await t.step("garbage", () => assert.rejects(check("x.y.z"), /Malformed token/));
  await t.step("expired", async () => {
    await assert.rejects(check(await sign({ exp: NOW - 600 })), /Token expired/);
  });
  await t.step("without exp", async () => {
    await assert.rejects(check(await sign({ iat: NOW })), { message: "Token has no exp" });
  });
});

Deno.test("a token living longer than the lifetime cap is refused", async (t) => {
  const check = createTokenCheck({ secret: SECRET, clock, maxLifetimeS: 3600 });
  const tooLong = /Token lifetime over the 3600 s cap/;

  await t.step("exp 1e300", async () => {
    await assert.rejects(check(await sign({ iat: NOW, exp: 1e300 })), tooLong);
    await assert.rejects(check(await sign({ exp: 1e300 })), tooLong);
  });
  await t.step("exp - iat one second over the cap", async () => {
    await assert.rejects(check(await sign({ iat: NOW - 10, exp: NOW - 10 + 3601 })), tooLong);
  });
  await t.step("exp - iat at the cap is accepted", async () => {
    assert.equal((await check(await sign({ iat: NOW, exp: NOW + 3600 }))).userId, "u-1");
    assert.equal((await check(await sign({ iat: NOW - 3000, exp: NOW + 600 }))).userId, "u-1");
  });
  await t.step("without iat, exp - now counts (with the 30 s skew)", async () => {
    assert.equal((await check(await sign({ exp: NOW + 3630 }))).userId, "u-1");
    await assert.rejects(check(await sign({ exp: NOW + 3631 })), tooLong);
  });
  await t.step("the lifetime counts from iat, not from now", async () => {
    await assert.rejects(check(await sign({ iat: NOW - 100 * DAY, exp: NOW + 600 })), tooLong);
  });
});

Deno.test("the lifetime cap defaults to MAX_TOKEN_LIFETIME_S's default of 30 days", async () => {
  assert.equal(DEFAULT_CONFIG.maxTokenLifetimeS, 30 * DAY);
  const check = createTokenCheck({ secret: SECRET, clock });
  assert.equal((await check(await sign({ iat: NOW, exp: NOW + 30 * DAY }))).userId, "u-1");
  await assert.rejects(
    check(await sign({ iat: NOW, exp: NOW + 30 * DAY + 1 })),
    /Token lifetime over the 2592000 s cap/,
  );
});

Deno.test("a token check refuses bad options", () => {
  assert.throws(() => createTokenCheck({ secret: "" }), TypeError);
  assert.throws(() => createTokenCheck({ secret: SECRET, maxLifetimeS: 0 }), {
    name: "RangeError",
    message: "Invalid token lifetime cap: 0",
  });
  assert.throws(() => createTokenCheck({ secret: SECRET, clockSkewS: -1 }), RangeError);
});
