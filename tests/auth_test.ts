import assert from "node:assert/strict";
import { signJwt } from "../chat/auth/jwt.ts";
import { base64Url, forgeJwt, jsonPart as part } from "./helpers/jwt_forge.ts";
import { eventually } from "./helpers/eventually.ts";
import type { Frame } from "./helpers/fakes.ts";
import { startServer } from "./helpers/app_server.ts";
import { TestClient } from "./helpers/ws_client.ts";

const SECRET = "auth-test-secret-0123456789abcdef";
const RELAXED = {
  AUTH_SECRET: SECRET,
  HANDSHAKES_PER_IP_PER_MIN: "10000",
  MAX_CONNECTIONS_PER_IP: "1000",
  RATE_LIMIT_PER_S: "1000",
  RATE_LIMIT_BURST: "1000",
};

const welcome = (f: Frame) => f.type === "welcome";
const nowS = () => Math.floor(Date.now() / 1000);

/** Signs any header with HMAC SHA-256, which signJwt will not do. */
const forge = (header: unknown, claims: unknown, secret = SECRET) =>
  forgeJwt({ header, payload: claims }, secret);

function token(name: string, sub = `id-${name}`, ttlS = 600): Promise<string> {
  return signJwt({ sub, name, iat: nowS(), exp: nowS() + ttlS }, SECRET);
}

/** Opens a socket and expects the server to close it with 1008 "Unauthorized". */
async function assertRefused(url: string, protocols?: string[]): Promise<void> {
  await using client = await TestClient.connect(url, { protocols });
  // A welcome means the token was taken: fail then, not after waiting for a close that never comes.
  await eventually(
    "a close or a welcome",
    () => client.closeInfo !== undefined || client.frames.some(welcome),
  );
  assert.ok(!client.frames.some(welcome), "admitted");
  assert.deepEqual(client.closeInfo, { code: 1008, reason: "Unauthorized" });
}

Deno.test("handshakes without a valid token are closed with 1008 Unauthorized", async (t) => {
  await using server = await startServer(RELAXED);
  const url = (jwt: string) => server.url(`/ws/chat/Mallory?token=${encodeURIComponent(jwt)}`);
  const claims = () => ({ sub: "id-m", name: "Mallory", iat: nowS(), exp: nowS() + 600 });

  await t.step("missing", async () => {
    await assertRefused(server.url("/ws/chat/Mallory"));
    await assertRefused(server.url("/ws"), ["chat"]);
  });
  await t.step("garbage", () => assertRefused(url("not-a-token")));
  await t.step("tampered signature", async () => {
    const jwt = await token("Mallory");
    const last = jwt.at(-2) === "A" ? "B" : "A";
    await assertRefused(url(jwt.slice(0, -2) + last + jwt.slice(-1)));
  });
  await t.step("tampered payload", async () => {
    const [header, , signature] = (await token("Mallory")).split(".");
    const payload = part({ ...claims(), name: "Admin" });
    await assertRefused(url(`${header}.${payload}.${signature}`));
  });
  await t.step("signed with another secret", async () => {
    await assertRefused(url(await signJwt(claims(), "some-other-secret")));
  });
  await t.step("alg none", async () => {
    await assertRefused(url(`${part({ alg: "none", typ: "JWT" })}.${part(claims())}.`));
    await assertRefused(url(await forge({ alg: "none", typ: "JWT" }, claims())));
  });
  await t.step("RS256", async () => {
    const signature = base64Url(crypto.getRandomValues(new Uint8Array(256)));
    await assertRefused(
      url(`${part({ alg: "RS256", typ: "JWT" })}.${part(claims())}.${signature}`),
    );
    // The HS256/RS256 confusion: an HMAC signature under an RS256 header.
    await assertRefused(url(await forge({ alg: "RS256", typ: "JWT" }, claims())));
  });
  await t.step("expired beyond the 30 s skew", async () => {
    const c = { ...claims(), iat: nowS() - 600, exp: nowS() - 60 };
    await assertRefused(url(await signJwt(c, SECRET)));
  });
  await t.step("not yet valid beyond the 30 s skew", async () => {
    await assertRefused(url(await signJwt({ ...claims(), nbf: nowS() + 120 }, SECRET)));
  });
  await t.step("without exp", async () => {
    await assertRefused(url(await signJwt({ sub: "id-m", name: "Mallory", iat: nowS() }, SECRET)));
  });
  await t.step("bad token in the subprotocol", async () => {
    await assertRefused(server.url("/ws/chat"), ["chat", "bearer.x.y.z"]);
  });

  const closes = server.app.manager.metrics.closes.get(1008) ?? 0;
  assert.ok(closes >= 14, `closes with 1008: ${closes}`);
  assert.equal(server.app.manager.connectionCount, 0);
});

Deno.test("a valid token is accepted from ?token= and from the subprotocol", async (t) => {
  await using server = await startServer(RELAXED);

  await t.step("?token=, and the token's name replaces the URL username", async () => {
    const jwt = await token("Alice");
    await using alice = await TestClient.connect(server.url(`/ws/chat/Impostor?token=${jwt}`));
    const frame = await alice.next(welcome);
    assert.equal(frame.username, "Alice");
    assert.equal(server.app.manager.connections()[0]?.userId, "id-Alice");
  });

  await t.step("subprotocol entry bearer.<token>; the server answers chat", async () => {
    await using bob = await TestClient.connect(server.url("/ws/chat"), {
      protocols: ["chat", `bearer.${await token("Bob")}`],
    });
    assert.equal(bob.protocol, "chat");
    assert.equal((await bob.next(welcome)).username, "Bob");
  });

  await t.step("a lone token entry is answered with itself", async () => {
    const entry = `bearer.${await token("Carol")}`;
    await using carol = await TestClient.connect(server.url("/ws/rooms/garden"), {
      protocols: [entry],
    });
    assert.equal(carol.protocol, entry);
    const frame = await carol.next(welcome);
    assert.equal(frame.username, "Carol");
    assert.equal(frame.room, "garden");
  });

  await t.step("a token within the 30 s skew is still valid", async () => {
    const jwt = await signJwt({ sub: "id-d", name: "Dave", exp: nowS() - 5 }, SECRET);
    await using dave = await TestClient.connect(server.url(`/ws/chat?token=${jwt}`));
    await dave.next(welcome);
  });

  await t.step("the echo route needs a token too", async () => {
    await using echo = await TestClient.connect(server.url(`/ws?token=${await token("Eve")}`));
    echo.send("hi");
    await echo.nextText((text) => text === "Echo: hi");
  });

  await t.step("names come from the token: rename is refused", async () => {
    await using frank = await TestClient.connect(
      server.url(`/ws/chat?token=${await token("Frank")}`),
    );
    await frank.next(welcome);
    frank.sendJson({ type: "rename", name: "Francis" });
    await frank.next((f) => f.type === "error" && f.code === "not_allowed");
  });

  await t.step("another user id cannot take an online name", async () => {
    await using grace = await TestClient.connect(
      server.url(`/ws/chat?token=${await token("Grace")}`),
    );
    await grace.next(welcome);
    const jwt = await token("Grace", "someone-else");
    await using other = await TestClient.connect(server.url(`/ws/chat?token=${jwt}`));
    assert.equal((await other.closed).code, 4009);
  });
});

Deno.test("without AUTH_SECRET everyone is anonymous and offered protocols are answered", async () => {
  await using server = await startServer({ HANDSHAKES_PER_IP_PER_MIN: "10000" });
  await using client = await TestClient.connect(server.url("/ws/chat/Heidi"), {
    protocols: ["chat"],
  });
  assert.equal(client.protocol, "chat");
  assert.equal((await client.next(welcome)).username, "Heidi");
  assert.equal(server.app.manager.connections()[0]?.userId, null);
});

Deno.test("one user in two tabs is listed once and gets private messages in both", async () => {
  await using server = await startServer(RELAXED);
  const aliceToken = await token("Alice");
  const bobToken = await token("Bob");
  await using bob = await TestClient.connect(server.url(`/ws/chat?token=${bobToken}`));
  await bob.next(welcome);
  const tab1 = await TestClient.connect(server.url(`/ws/chat?token=${aliceToken}`));
  await using tab2 = await TestClient.connect(server.url(`/ws/chat?token=${aliceToken}`));
  try {
    await tab1.next(welcome);
    const second = await tab2.next(welcome);
    assert.equal(second.username, "Alice");
    assert.deepEqual(second.users, ["Bob", "Alice"]);

    bob.sendJson({ type: "users" });
    const users = await bob.next((f) => f.type === "users");
    assert.deepEqual(users.users, ["Bob", "Alice"]);
    assert.equal(users.connected_count, 2);

    bob.sendJson({ type: "private", to: "alice", message: "psst" });
    const isPrivate = (f: Frame) => f.type === "private" && f.message === "psst";
    await tab1.next(isPrivate);
    await tab2.next(isPrivate);
    await bob.next(isPrivate);

    // A marker from Bob after each step proves what came before it.
    const joins = (f: Frame) => f.type === "system" && f.event === "join" && f.user === "Alice";
    const leaves = (f: Frame) => f.type === "system" && f.event === "leave" && f.user === "Alice";
    const marker = async (text: string) => {
      bob.sendJson({ type: "message", message: text });
      await bob.next((f) => f.type === "message" && f.message === text);
    };
    await marker("one");
    assert.equal(bob.frames.filter(joins).length, 1, "the second tab is not announced");

    await tab1.close();
    await eventually("tab 1 gone", () => server.app.manager.connectionCount === 2);
    await marker("two");
    assert.equal(bob.frames.filter(leaves).length, 0, "Alice is still online in tab 2");
    bob.sendJson({ type: "users" });
    await eventually(
      "the second users list",
      () => bob.frames.filter((f) => f.type === "users").length === 2,
    );
    assert.deepEqual(bob.frames.filter((f) => f.type === "users")[1]?.users, ["Bob", "Alice"]);

    await tab2.close();
    await bob.next(leaves);
    await marker("three");
    assert.equal(bob.frames.filter(leaves).length, 1);
  } finally {
    await tab1.close();
  }
});

Deno.test("a token living longer than MAX_TOKEN_LIFETIME_S is closed with 1008 Unauthorized", async (t) => {
  await using server = await startServer({ ...RELAXED, MAX_TOKEN_LIFETIME_S: "3600" });
  const url = async (claims: Record<string, unknown>) =>
    server.url(
      `/ws/chat?token=${await signJwt({ sub: "id-m", name: "Mallory", ...claims }, SECRET)}`,
    );

  await t.step("exp 1e300", async () => {
    await assertRefused(await url({ iat: nowS(), exp: 1e300 }));
    await assertRefused(await url({ exp: 1e300 }));
  });
  await t.step("exp - iat one second past the cap", async () => {
    await assertRefused(await url({ iat: nowS() - 60, exp: nowS() - 60 + 3601 }));
  });
  await t.step("without iat, exp an hour past the cap from now", async () => {
    await assertRefused(await url({ exp: nowS() + 7200 }));
  });
  await t.step("in the subprotocol", async () => {
    const jwt = await signJwt({ sub: "id-m", name: "Mallory", exp: 1e300 }, SECRET);
    await assertRefused(server.url("/ws/chat"), ["chat", `bearer.${jwt}`]);
  });
  await t.step("a token within the cap is admitted", async () => {
    await using client = await TestClient.connect(await url({ iat: nowS(), exp: nowS() + 3600 }));
    assert.equal((await client.next(welcome)).username, "Mallory");
  });
});

Deno.test("the default lifetime cap is 30 days", async () => {
  await using server = await startServer(RELAXED);
  const day = 86_400;
  const at = (lifetimeS: number) =>
    signJwt({ sub: "id-n", name: "Nina", iat: nowS(), exp: nowS() + lifetimeS }, SECRET);
  await assertRefused(server.url(`/ws/chat?token=${await at(30 * day + 60)}`));
  await using nina = await TestClient.connect(server.url(`/ws/chat?token=${await at(30 * day)}`));
  assert.equal((await nina.next(welcome)).username, "Nina");
});
