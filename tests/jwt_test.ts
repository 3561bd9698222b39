import assert from "node:assert/strict";
import { JwtVerifier, MAX_TOKEN_LENGTH, signJwt, type TokenClaims } from "../chat/auth/jwt.ts";
import { DEFAULT_TTL_SECONDS, mintToken, parseTokenArgs } from "../tools/token.ts";
import { base64Url, forgeJwt, jsonPart, signJwtInput } from "./helpers/jwt_forge.ts";

const SECRET = "test-secret-with-enough-entropy-0123456789";
// A fixed clock keeps the time-claim tests independent of the machine's load.
const NOW_MS = 1_700_000_000_000;
const NOW = NOW_MS / 1000;

const encoder = new TextEncoder();
const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/** Signs any header and payload with HMAC SHA-256, to forge what signJwt refuses to. */
const signRaw = (header: unknown, payload: unknown, secret = SECRET) =>
  forgeJwt({ header, payload }, secret);

const HEADER = { alg: "HS256", typ: "JWT" };
const CLAIMS: TokenClaims = { sub: "u-1", name: "Alice", iat: NOW, exp: NOW + 60 };

function claimsWithout(key: string): Record<string, unknown> {
  const copy: Record<string, unknown> = { ...CLAIMS };
  delete copy[key];
  return copy;
}

Deno.test("verifier returns the claims of a token it signed", async () => {
  const claims = { ...CLAIMS, role: "admin", rooms: ["lobby"] };
  const token = await signJwt(claims, SECRET);
  assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/);
  const verifier = new JwtVerifier(SECRET);
  assert.deepEqual(await verifier.verify(token, NOW_MS), claims);
  // The second call reuses the imported key and must give the same answer.
  assert.deepEqual(await verifier.verify(token, NOW_MS), claims);
});

Deno.test("verifier imports the HMAC key once", async () => {
  const token = await signRaw(HEADER, CLAIMS);
  const subtle = crypto.subtle;
  const original = subtle.importKey;
  let calls = 0;
  Object.defineProperty(subtle, "importKey", {
    configurable: true,
    value: (...args: Parameters<SubtleCrypto["importKey"]>) => {
      calls++;
      return original.apply(subtle, args);
    },
  });
  try {
    const verifier = new JwtVerifier(SECRET);
    assert.equal(calls, 0);
    for (let i = 0; i < 3; i++) await verifier.verify(token, NOW_MS);
    assert.equal(calls, 1);
  } finally {
    delete (subtle as { importKey?: unknown }).importKey;
  }
  assert.equal(crypto.subtle.importKey, original);
});

Deno.test("verifier rejects tokens not signed with its secret", async (t) => {
  const verifier = new JwtVerifier(SECRET);
  const token = await signJwt(CLAIMS, SECRET);
  const [header, payload, signature] = token.split(".") as [string, string, string];

  await t.step("tampered payload", async () => {
    const forged = `${header}.${jsonPart({ ...CLAIMS, sub: "admin" })}.${signature}`;
    await assert.rejects(verifier.verify(forged, NOW_MS), {
      name: "Error",
      message: "Token signature is invalid",
    });
  });

  await t.step("tampered signature", async () => {
    // Flipping the first character keeps the encoding canonical.
    const flipped = (signature[0] === "A" ? "B" : "A") + signature.slice(1);
    await assert.rejects(verifier.verify(`${header}.${payload}.${flipped}`, NOW_MS), {
      message: "Token signature is invalid",
    });
  });

  await t.step("truncated signature", async () => {
    await assert.rejects(verifier.verify(`${header}.${payload}.${signature.slice(0, 8)}`, NOW_MS), {
      message: "Token signature is invalid",
    });
  });

  await t.step("wrong secret", async () => {
    const other = await signJwt(CLAIMS, "another-secret");
    await assert.rejects(verifier.verify(other, NOW_MS), {
      message: "Token signature is invalid",
    });
  });
});

Deno.test("verifier accepts only the HS256 algorithm", async (t) => {
  const verifier = new JwtVerifier(SECRET);

  await t.step("alg none with an empty signature", async () => {
    const token = `${jsonPart({ alg: "none", typ: "JWT" })}.${jsonPart(CLAIMS)}.`;
    await assert.rejects(verifier.verify(token, NOW_MS), {
      message: "Unsupported token algorithm: none",
    });
  });

  // Each is signed with the right HMAC key, so only the header check stops it.
  for (const alg of ["RS256", "HS512", "hs256", "HS256 ", ""]) {
    await t.step(`alg ${JSON.stringify(alg)}`, async () => {
      const token = await signRaw({ alg, typ: "JWT" }, CLAIMS);
      await assert.rejects(verifier.verify(token, NOW_MS), /^Error: Unsupported token algorithm: /);
    });
  }

  await t.step("alg missing", async () => {
    const token = await signRaw({ typ: "JWT" }, CLAIMS);
    await assert.rejects(verifier.verify(token, NOW_MS), {
      message: "Unsupported token algorithm: undefined",
    });
  });

  await t.step("typ other than JWT", async () => {
    const token = await signRaw({ alg: "HS256", typ: "JWS" }, CLAIMS);
    await assert.rejects(verifier.verify(token, NOW_MS), {
      message: "Unsupported token type: JWS",
    });
  });

  await t.step("typ absent is accepted", async () => {
    const token = await signRaw({ alg: "HS256" }, CLAIMS);
    assert.equal((await verifier.verify(token, NOW_MS)).sub, "u-1");
  });

  await t.step("critical header extension", async () => {
    const token = await signRaw({ ...HEADER, crit: ["b64"], b64: false }, CLAIMS);
    await assert.rejects(verifier.verify(token, NOW_MS), /Unsupported critical token header/);
  });
});

Deno.test("verifier checks exp, nbf and iat with clock skew", async (t) => {
  const verifier = new JwtVerifier(SECRET);
  const verify = async (claims: Record<string, unknown>) =>
    await verifier.verify(await signRaw(HEADER, claims), NOW_MS);

  await t.step("expired beyond skew", async () => {
    await assert.rejects(verify({ ...CLAIMS, exp: NOW - 31 }), {
      message: `Token expired: exp ${NOW - 31}`,
    });
  });

  await t.step("expired exactly at the end of the skew", async () => {
    await assert.rejects(verify({ ...CLAIMS, exp: NOW - 30 }), /Token expired/);
  });

  await t.step("expired but within skew is accepted", async () => {
    assert.equal((await verify({ ...CLAIMS, exp: NOW - 29 })).exp, NOW - 29);
  });

  await t.step("no exp is accepted", async () => {
    assert.equal((await verify(claimsWithout("exp"))).exp, undefined);
  });

  await t.step("not yet valid (nbf) beyond skew", async () => {
    await assert.rejects(verify({ ...CLAIMS, nbf: NOW + 31 }), {
      message: `Token not yet valid: nbf ${NOW + 31}`,
    });
  });

  await t.step("nbf within skew is accepted", async () => {
    assert.equal((await verify({ ...CLAIMS, nbf: NOW + 30 })).nbf, NOW + 30);
  });

  await t.step("iat in the future beyond skew", async () => {
    await assert.rejects(verify({ ...CLAIMS, iat: NOW + 31 }), {
      message: `Token issued in the future: iat ${NOW + 31}`,
    });
  });

  await t.step("iat within skew is accepted", async () => {
    assert.equal((await verify({ ...CLAIMS, iat: NOW + 30 })).iat, NOW + 30);
  });

  for (const claim of ["exp", "nbf", "iat"]) {
    for (const value of ["1700000000", null, true, {}]) {
      await t.step(`${claim} ${JSON.stringify(value)} is not a number`, async () => {
        await assert.rejects(
          verify({ ...CLAIMS, [claim]: value }),
          new RegExp(`^Error: Invalid token claim ${claim}: `),
        );
      });
    }
  }

  await t.step("clockSkewSeconds 0 rejects at exp", async () => {
    const strict = new JwtVerifier(SECRET, { clockSkewSeconds: 0 });
    const token = await signRaw(HEADER, { ...CLAIMS, exp: NOW + 1 });
    assert.equal((await strict.verify(token, NOW_MS)).exp, NOW + 1);
    await assert.rejects(strict.verify(token, NOW_MS + 1000), /Token expired/);
  });

  await t.step("now defaults to the current time", async () => {
    const token = await signJwt({ ...CLAIMS, exp: 1 }, SECRET);
    await assert.rejects(verifier.verify(token), /Token expired/);
  });
});

Deno.test("verifier requires sub and name claims", async (t) => {
  const verifier = new JwtVerifier(SECRET);
  const cases: [string, Record<string, unknown>, string][] = [
    ["missing sub", claimsWithout("sub"), "Invalid token claim sub: undefined"],
    ["empty sub", { ...CLAIMS, sub: "" }, 'Invalid token claim sub: ""'],
    ["numeric sub", { ...CLAIMS, sub: 42 }, "Invalid token claim sub: 42"],
    ["null sub", { ...CLAIMS, sub: null }, "Invalid token claim sub: null"],
    ["missing name", claimsWithout("name"), "Invalid token claim name: undefined"],
    ["numeric name", { ...CLAIMS, name: 7 }, "Invalid token claim name: 7"],
  ];
  for (const [label, claims, message] of cases) {
    await t.step(label, async () => {
      await assert.rejects(verifier.verify(await signRaw(HEADER, claims), NOW_MS), { message });
    });
  }
});

Deno.test("verifier rejects malformed tokens", async (t) => {
  const verifier = new JwtVerifier(SECRET);
  const good = await signJwt(CLAIMS, SECRET);
  const [header, payload, signature] = good.split(".") as [string, string, string];

  await t.step("garbage strings", async () => {
    const garbage = [
      "",
      "abc",
      "a.b",
      "a.b.c.d",
      "...",
      "Bearer x.y.z",
      "!!!.@@@.###",
      "\u0000.\n.\r",
    ];
    for (const token of garbage) {
      await assert.rejects(verifier.verify(token, NOW_MS), /^Error: Malformed token/, token);
    }
  });

  await t.step("the right parts in the wrong order", async () => {
    await assert.rejects(verifier.verify(`${payload}.${header}.${signature}`, NOW_MS), /^Error: /);
  });

  await t.step("non-canonical base64url", async () => {
    const variants = [
      `${header}=.${payload}.${signature}`,
      `${header}.${payload}.${signature}=`,
      `${header}.${payload}.+${signature.slice(1)}`,
      `${header} .${payload}.${signature}`,
      // 32 bytes take 43 characters with 2 spare bits; a set spare bit is a second spelling.
      `${header}.${payload}.${signature.slice(0, 42)}${
        ALPHABET[ALPHABET.indexOf(signature.slice(42)) ^ 1]
      }`,
    ];
    for (const token of variants) {
      await assert.rejects(verifier.verify(token, NOW_MS), /invalid base64url/, token);
    }
  });

  await t.step("header is not JSON", async () => {
    const token = `${base64Url(encoder.encode("{alg:HS256}"))}.${payload}.${signature}`;
    await assert.rejects(verifier.verify(token, NOW_MS), {
      message: "Malformed token header: invalid JSON",
    });
  });

  await t.step("header is invalid UTF-8", async () => {
    const token = `${base64Url(new Uint8Array([0x7b, 0xff, 0x7d]))}.${payload}.${signature}`;
    await assert.rejects(verifier.verify(token, NOW_MS), {
      message: "Malformed token header: invalid JSON",
    });
  });

  for (const value of [null, [], "HS256", 1]) {
    await t.step(`header ${JSON.stringify(value)} is not an object`, async () => {
      const token = `${jsonPart(value)}.${payload}.${signature}`;
      await assert.rejects(verifier.verify(token, NOW_MS), {
        message: "Malformed token header: not a JSON object",
      });
    });
  }

  await t.step("signed payload is not an object", async () => {
    await assert.rejects(verifier.verify(await signRaw(HEADER, ["u-1"]), NOW_MS), {
      message: "Malformed token payload: not a JSON object",
    });
  });

  await t.step("signed payload is not JSON", async () => {
    const input = `${jsonPart(HEADER)}.${base64Url(encoder.encode("sub=u-1"))}`;
    await assert.rejects(verifier.verify(await signJwtInput(input, SECRET), NOW_MS), {
      message: "Malformed token payload: invalid JSON",
    });
  });

  await t.step("overlong token", async () => {
    const long = await signRaw(HEADER, { ...CLAIMS, pad: "x".repeat(MAX_TOKEN_LENGTH) });
    await assert.rejects(verifier.verify(long, NOW_MS), {
      message: `Token too long: ${long.length} characters`,
    });
  });

  await t.step("token at the length limit is accepted", async () => {
    const base = await signRaw(HEADER, { ...CLAIMS, pad: "" });
    // Each 3 bytes of padding grow the payload by 4 base64url characters.
    const pad = "x".repeat(Math.floor((MAX_TOKEN_LENGTH - base.length) / 4) * 3);
    const token = await signRaw(HEADER, { ...CLAIMS, pad });
    assert.ok(token.length <= MAX_TOKEN_LENGTH && token.length > MAX_TOKEN_LENGTH - 4);
    assert.equal((await verifier.verify(token, NOW_MS)).pad, pad);
  });
});

Deno.test("verifier rejects invalid options and arguments", async (t) => {
  await t.step("empty secret", () => {
    assert.throws(() => new JwtVerifier(""), TypeError);
  });

  await t.step("negative or non-finite clock skew", () => {
    for (const clockSkewSeconds of [-1, NaN, Infinity]) {
      assert.throws(() => new JwtVerifier(SECRET, { clockSkewSeconds }), {
        name: "RangeError",
        message: `Invalid clock skew: ${clockSkewSeconds}`,
      });
    }
  });

  await t.step("non-finite now", async () => {
    const verifier = new JwtVerifier(SECRET);
    const token = await signJwt({ ...CLAIMS, exp: NOW - 3600 }, SECRET);
    await assert.rejects(verifier.verify(token, NaN), { name: "RangeError" });
  });

  await t.step("signJwt with an empty secret", async () => {
    await assert.rejects(signJwt(CLAIMS, ""), TypeError);
  });
});

Deno.test("mintToken signs sub, name, iat and exp", async (t) => {
  const verifier = new JwtVerifier(SECRET);

  await t.step("sub defaults to the name and ttl to an hour", async () => {
    const token = await mintToken({ name: "alice", secret: SECRET, now: NOW_MS + 999 });
    assert.deepEqual(await verifier.verify(token, NOW_MS), {
      sub: "alice",
      name: "alice",
      iat: NOW,
      exp: NOW + DEFAULT_TTL_SECONDS,
    });
  });

  await t.step("explicit sub and ttl", async () => {
    const token = await mintToken({
      name: "Alice",
      sub: "u-42",
      ttlSeconds: 60,
      secret: SECRET,
      now: NOW_MS,
    });
    const claims = await verifier.verify(token, NOW_MS);
    assert.equal(claims.sub, "u-42");
    assert.equal(claims.name, "Alice");
    assert.equal(claims.exp, NOW + 60);
  });

  await t.step("invalid options", async () => {
    for (const ttlSeconds of [0, -5, 1.5, NaN]) {
      await assert.rejects(mintToken({ name: "a", secret: SECRET, ttlSeconds }), RangeError);
    }
    await assert.rejects(mintToken({ name: "", secret: SECRET }), TypeError);
    await assert.rejects(mintToken({ name: "a", sub: "", secret: SECRET }), TypeError);
    await assert.rejects(mintToken({ name: "a", secret: "" }), TypeError);
  });
});

Deno.test("token tool parses name, ttl and --sub", async (t) => {
  await t.step("name only", () => {
    assert.deepEqual(parseTokenArgs(["alice"]), { name: "alice", ttlSeconds: 3600 });
  });

  await t.step("name, ttl and sub in any order", () => {
    assert.deepEqual(parseTokenArgs(["--sub=u-1", "alice", "60"]), {
      name: "alice",
      ttlSeconds: 60,
      sub: "u-1",
    });
  });

  await t.step("-- lets a name start with two dashes", () => {
    assert.deepEqual(parseTokenArgs(["--", "--bob"]), { name: "--bob", ttlSeconds: 3600 });
  });

  await t.step("invalid ttl", () => {
    for (const ttl of ["0", "-5", "1.5", "1e3", "abc", " 60", "0x10", "99999999999999999999"]) {
      assert.throws(() => parseTokenArgs(["alice", ttl]), RangeError, ttl);
    }
  });

  await t.step("usage errors", () => {
    assert.throws(() => parseTokenArgs([]), /^TypeError: Usage: /);
    assert.throws(() => parseTokenArgs(["alice", "60", "extra"]), /Unexpected argument: extra/);
    assert.throws(() => parseTokenArgs(["alice", "--ttl=60"]), /Unknown option: --ttl=60/);
    assert.throws(() => parseTokenArgs(["alice", "--sub="]), /Invalid sub/);
  });
});

interface ToolResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs tools/token.ts as `deno task token` does, with AUTH_SECRET and SUB as given. */
async function runTokenTool(args: string[], secret: string | undefined): Promise<ToolResult> {
  const env = Deno.env.toObject();
  delete env.AUTH_SECRET;
  delete env.SUB;
  if (secret !== undefined) env.AUTH_SECRET = secret;
  const controller = new AbortController();
  // Bounds the test if the subprocess hangs; a cold start may compile first.
  const timer = setTimeout(() => controller.abort(), 60_000);
  try {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-env", "tools/token.ts", ...args],
      cwd: new URL("../", import.meta.url),
      env,
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: controller.signal,
    }).output();
    const decoder = new TextDecoder();
    return {
      code: output.code,
      stdout: decoder.decode(output.stdout),
      stderr: decoder.decode(output.stderr),
    };
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("token tool prints a token that the verifier accepts", async () => {
  const before = Math.floor(Date.now() / 1000);
  const result = await runTokenTool(["alice", "60"], SECRET);
  const after = Math.floor(Date.now() / 1000);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /^[\w-]+\.[\w-]+\.[\w-]+\n$/);
  const claims = await new JwtVerifier(SECRET).verify(result.stdout.trim());
  assert.equal(claims.name, "alice");
  assert.equal(claims.sub, "alice");
  assert.ok(typeof claims.iat === "number" && typeof claims.exp === "number");
  assert.equal(claims.exp - claims.iat, 60);
  assert.ok(claims.iat >= before && claims.iat <= after, `iat ${claims.iat} not in run`);
});

Deno.test("token tool fails with one line when AUTH_SECRET is missing", async () => {
  const result = await runTokenTool(["alice", "60"], undefined);
  assert.equal(result.code, 1);
  assert.equal(result.stdout, "");
  assert.equal(result.stderr, "Missing environment variable: AUTH_SECRET\n");
});

Deno.test("token tool fails with one line for an invalid ttl", async () => {
  const result = await runTokenTool(["alice", "soon"], SECRET);
  assert.equal(result.code, 1);
  assert.equal(result.stdout, "");
  assert.equal(result.stderr, "Invalid ttl, expected a positive integer of seconds: soon\n");
});
