import assert from "node:assert/strict";
import { signJwt } from "../chat/auth/jwt.ts";
import { startServer } from "./helpers/app_server.ts";
import { TestClient } from "./helpers/ws_client.ts";

const SECRET = "api-auth-secret-0123456789abcdef";
const RELAXED = { HANDSHAKES_PER_IP_PER_MIN: "10000", MAX_CONNECTIONS_PER_IP: "1000" };
const ROUTES = ["/api/rooms", "/api/rooms/lobby/messages", "/api/rooms/lobby/users"];
const nowS = () => Math.floor(Date.now() / 1000);

function token(name: string, claims: Record<string, unknown> = {}): Promise<string> {
  return signJwt({ sub: `id-${name}`, name, iat: nowS(), exp: nowS() + 600, ...claims }, SECRET);
}

/** GETs a path and reads status, the headers that matter here and the JSON body. */
async function get(url: string, headers: Record<string, string> = {}) {
  const res = await fetch(url, { headers });
  return {
    status: res.status,
    authenticate: res.headers.get("www-authenticate"),
    retryAfter: res.headers.get("retry-after"),
    type: res.headers.get("content-type"),
    body: await res.json(),
  };
}

Deno.test("with AUTH_SECRET every /api route answers 401 without a valid token", async (t) => {
  await using server = await startServer({ AUTH_SECRET: SECRET, ...RELAXED });
  const refusals: [string, () => Promise<Record<string, string>>, string][] = [
    ["no token", () => Promise.resolve({}), ""],
    ["garbage bearer", () => Promise.resolve({ authorization: "Bearer x.y.z" }), ""],
    ["garbage ?token=", () => Promise.resolve({}), "?token=x.y.z"],
    [
      "signed with another secret",
      async () => ({
        authorization: `Bearer ${await signJwt(
          { sub: "m", name: "M", exp: nowS() + 60 },
          "other-secret",
        )}`,
      }),
      "",
    ],
    [
      "expired",
      async () => ({ authorization: `Bearer ${await token("M", { exp: nowS() - 120 })}` }),
      "",
    ],
    [
      "without exp",
      async () => ({ authorization: `Bearer ${await token("M", { exp: undefined })}` }),
      "",
    ],
    [
      "exp 1e300, past MAX_TOKEN_LIFETIME_S",
      async () => ({ authorization: `Bearer ${await token("M", { exp: 1e300 })}` }),
      "",
    ],
    ["a token in another scheme", async () => ({ authorization: `Basic ${await token("M")}` }), ""],
  ];
  for (const [name, headers, query] of refusals) {
    await t.step(name, async () => {
      for (const path of ROUTES) {
        const res = await get(server.httpUrl(path + query), await headers());
        assert.equal(res.status, 401, path);
        assert.deepEqual(res.body, { error: "Unauthorized" });
        assert.equal(res.authenticate, "Bearer");
        assert.match(res.type ?? "", /^application\/json/);
      }
    });
  }
});

Deno.test("with AUTH_SECRET a valid token opens /api from the header or ?token=", async (t) => {
  await using server = await startServer({ AUTH_SECRET: SECRET, ...RELAXED });
  const jwt = await token("Alice");
  await using alice = await TestClient.connect(server.url(`/ws/chat?token=${jwt}`));
  await alice.next((f) => f.type === "welcome");
  alice.sendJson({ type: "message", message: "hello" });
  await alice.next((f) => f.type === "message" && f.message === "hello");

  const expectations: [string, (body: Record<string, unknown>) => void][] = [
    [
      "/api/rooms",
      (body) =>
        assert.deepEqual(body.rooms, [{ room: "lobby", users: ["Alice"], connected_count: 1 }]),
    ],
    ["/api/rooms/lobby/users", (body) => assert.deepEqual(body.users, ["Alice"])],
    ["/api/rooms/lobby/messages", (body) =>
      assert.deepEqual(
        (body.messages as { type: string; message: string }[])
          .filter((m) => m.type === "message").map((m) => m.message),
        ["hello"],
      )],
  ];
  await t.step("Authorization: Bearer", async () => {
    for (const [path, check] of expectations) {
      const res = await get(server.httpUrl(path), { authorization: `Bearer ${jwt}` });
      assert.equal(res.status, 200, path);
      check(res.body);
    }
  });
  await t.step("?token=", async () => {
    for (const [path, check] of expectations) {
      const res = await get(server.httpUrl(`${path}?token=${jwt}`));
      assert.equal(res.status, 200, path);
      check(res.body);
    }
  });
});

Deno.test("without AUTH_SECRET /api needs no token", async () => {
  await using server = await startServer(RELAXED);
  for (const path of ROUTES) assert.equal((await get(server.httpUrl(path))).status, 200, path);
});

Deno.test("/api requests are rate limited per client address like handshakes", async (t) => {
  const env = { AUTH_SECRET: SECRET, HANDSHAKES_PER_IP_PER_MIN: "2", TRUST_PROXY: "true" };
  await using server = await startServer(env);
  const from = (address: string, jwt = "") => ({
    "x-forwarded-for": address,
    ...(jwt === "" ? {} : { authorization: `Bearer ${jwt}` }),
  });
  const jwt = await token("Alice");

  await t.step("the third request in a minute is 429 with Retry-After", async () => {
    assert.equal((await get(server.httpUrl("/api/rooms"), from("10.0.0.1", jwt))).status, 200);
    assert.equal(
      (await get(server.httpUrl("/api/rooms/a/users"), from("10.0.0.1", jwt))).status,
      200,
    );
    const res = await get(server.httpUrl("/api/rooms/a/messages"), from("10.0.0.1", jwt));
    assert.equal(res.status, 429);
    // Two a minute: the next request is allowed in 30 s.
    assert.equal(res.retryAfter, "30");
    assert.deepEqual(res.body, { error: "Too many requests" });
  });
  await t.step("another address has its own budget", async () => {
    assert.equal((await get(server.httpUrl("/api/rooms"), from("10.0.0.2", jwt))).status, 200);
  });
  await t.step("refused tokens count, so guessing is throttled", async () => {
    assert.equal((await get(server.httpUrl("/api/rooms"), from("10.0.0.3", "bad"))).status, 401);
    assert.equal((await get(server.httpUrl("/api/rooms"), from("10.0.0.3", "bad"))).status, 401);
    assert.equal((await get(server.httpUrl("/api/rooms"), from("10.0.0.3", jwt))).status, 429);
  });
});
