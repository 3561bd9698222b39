import assert from "node:assert/strict";
import {
  createGatekeeper,
  handshakeToken,
  offeredProtocols,
  selectProtocol,
} from "../chat/auth/gatekeeper.ts";
import { signJwt, type TokenClaims } from "../chat/auth/jwt.ts";
import { createTokenCheck } from "../chat/auth/token_check.ts";
import type { LogFields } from "../chat/logger.ts";
import { CloseCode, CloseReason } from "../chat/protocol.ts";
import { FakeClock } from "./helpers/fakes.ts";

const SECRET = "gatekeeper-secret-0123456789abcdef";

/** A logger that keeps each line's event and fields. */
function recordingLogger() {
  const lines: { event: string; fields?: LogFields }[] = [];
  const keep = (event: string, fields?: LogFields) => lines.push({ event, fields });
  return { lines, logger: { debug: keep, info: keep, warn: keep, error: keep } };
}

Deno.test("the gatekeeper admits anyone within the rate while authentication is off", async () => {
  const clock = new FakeClock(1_000_000);
  const { lines, logger } = recordingLogger();
  const gate = createGatekeeper({ requestsPerIpPerMin: 2, clock, logger });
  const alice = { remoteAddr: "203.0.113.7", token: "" };
  assert.deepEqual(await gate(alice), { kind: "anonymous" });
  assert.deepEqual(await gate(alice), { kind: "anonymous" });
  assert.deepEqual(await gate(alice), { kind: "throttled", retryAfterS: 30 });
  assert.deepEqual(await gate({ remoteAddr: "203.0.113.8", token: "" }), { kind: "anonymous" });
  clock.time += 30_000;
  assert.deepEqual(await gate(alice), { kind: "anonymous" });
  assert.deepEqual(lines, [{ event: "handshake_rate_limited", fields: { remote: "203.0.113.7" } }]);
});

Deno.test("with a token check the gatekeeper answers an identity or a refusal", async () => {
  const clock = new FakeClock(1_700_000_000_000);
  const now = clock.now() / 1000;
  const { lines, logger } = recordingLogger();
  const gate = createGatekeeper({
    tokenCheck: createTokenCheck({ secret: SECRET, clock }),
    events: { throttled: "api_rate_limited", unauthorized: "api_unauthorized" },
    requestsPerIpPerMin: 3,
    clock,
    logger,
  });
  const token = await signJwt({ sub: "u-1", name: "Alice", exp: now + 600 } as TokenClaims, SECRET);
  const remoteAddr = "198.51.100.1";
  assert.deepEqual(await gate({ remoteAddr, token }), {
    kind: "identity",
    userId: "u-1",
    username: "Alice",
  });
  const refusal = {
    kind: "refuse",
    code: CloseCode.PolicyViolation,
    reason: CloseReason.Unauthorized,
  };
  assert.deepEqual(await gate({ remoteAddr, token: "" }), refusal);
  assert.deepEqual(await gate({ remoteAddr, token: `${token}x` }), refusal);
  // Counted before the token: a valid token does not get past the rate either.
  assert.equal((await gate({ remoteAddr, token })).kind, "throttled");
  assert.deepEqual(lines.map((l) => l.event), [
    "api_unauthorized",
    "api_unauthorized",
    "api_rate_limited",
  ]);
  assert.deepEqual(lines[0]!.fields, { remote: remoteAddr, error: "Missing token" });
  assert.ok(!JSON.stringify(lines).includes(token), "no line carries the token");
});

Deno.test("the gatekeeper refuses a rate out of range", () => {
  for (const requestsPerIpPerMin of [0, 1.5, NaN]) {
    assert.throws(() => createGatekeeper({ requestsPerIpPerMin }), RangeError);
  }
});

Deno.test("subprotocols: the answered one is never a token entry unless it was all offered", () => {
  assert.deepEqual(offeredProtocols("chat, bearer.abc"), ["chat", "bearer.abc"]);
  assert.deepEqual(offeredProtocols("chat,bearer.abc"), ["chat", "bearer.abc"]);
  assert.deepEqual(offeredProtocols(null), []);
  assert.equal(selectProtocol(["bearer.abc", "chat"]), "chat");
  assert.equal(selectProtocol(["bearer.abc"]), "bearer.abc");
  assert.equal(selectProtocol([]), undefined);
});

Deno.test("a handshake's token comes from ?token= first, then a bearer. entry", () => {
  assert.equal(handshakeToken("q", ["chat", "bearer.p"]), "q");
  assert.equal(handshakeToken("", ["chat", "bearer.p"]), "p");
  assert.equal(handshakeToken(null, ["chat"]), "");
});
