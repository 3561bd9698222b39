import assert from "node:assert/strict";
import { publicUserId } from "../chat/user_ids.ts";
import { startServer, type TestServer } from "./helpers/app_server.ts";
import { TestClient } from "./helpers/ws_client.ts";

const KEY_A = "browserAkey-0123456789abcdef";
const KEY_B = "browserBkey-0123456789abcdef";

function tab(server: TestServer, name: string, key?: string): Promise<TestClient> {
  const protocols = key === undefined ? ["chat"] : ["chat", `key.${key}`];
  return TestClient.connect(server.url(`/ws/chat/${encodeURIComponent(name)}`), { protocols });
}

/** Checks the one-browser rules on `first` and `second` (the same server, or two sharing a store). */
async function checkTabs(t: Deno.TestContext, first: TestServer, second: TestServer) {
  await using one = await tab(first, "alice", KEY_A);
  await one.next("welcome");

  await t.step("a second tab of the same browser gets the name too, listed once", async () => {
    await using two = await tab(second, "Alice", KEY_A);
    const welcome = await two.next("welcome");
    assert.equal(two.protocol, "chat", "the key came back as the subprotocol");
    assert.deepEqual(welcome.users, ["alice"]);
    two.sendJson({ type: "message", message: "from tab two" });
    await one.next((f) => f.message === "from tab two");
  });
  await t.step("another browser asking for the name is refused with 4009", async () => {
    await using other = await tab(second, "alice", KEY_B);
    assert.equal((await other.closed).code, 4009);
  });
  await t.step("a client without a key is refused with 4009", async () => {
    await using other = await tab(second, "ALICE");
    assert.equal((await other.closed).code, 4009);
  });
  await t.step("a key too short to be a secret counts as none", async () => {
    await using other = await tab(second, "alice", "short");
    assert.equal((await other.closed).code, 4009);
  });
}

Deno.test("the tabs of one browser share its name; other browsers cannot take it", async (t) => {
  await t.step("one process", async (t) => {
    await using server = await startServer();
    await checkTabs(t, server, server);
  });
  await t.step("two processes sharing a kv store", async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "chat_key_" });
    try {
      const env = { CHAT_ENGINE: "kv", KV_PATH: `${dir}/chat.kv` };
      await using a = await startServer(env);
      await using b = await startServer(env);
      await checkTabs(t, a, b);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
});

Deno.test("with AUTH_SECRET a browser key is ignored: the token names the user", async () => {
  await using server = await startServer({ AUTH_SECRET: "key-test-secret-0123456789abcdef" });
  await using keyed = await tab(server, "alice", KEY_A);
  assert.equal((await keyed.closed).code, 1008);
});

Deno.test("own messages carry the author's public uid: one per browser key or token sub, kept by a rename", async (t) => {
  await using server = await startServer();
  await using one = await tab(server, "alice", KEY_A);
  await using two = await tab(server, "alice", KEY_A);
  await using other = await tab(server, "bob", KEY_B);
  await using keyless = await tab(server, "carol");
  const [w1, w2, w3, w4] = await Promise.all(
    [one, two, other, keyless].map((c) => c.next("welcome")),
  );
  await t.step(
    "tabs with one key share a uid; other keys and keyless sockets have their own",
    () => {
      assert.equal(w1!.uid, w2!.uid);
      assert.notEqual(w1!.uid, w3!.uid);
      assert.match(String(w1!.uid), /^u[A-Za-z0-9_-]{16}$/);
      assert.match(String(w4!.uid), /^c/);
      assert.ok(!String(w1!.uid).includes(KEY_A.slice(0, 8)), "the key shows in the uid");
    },
  );
  await t.step("a message carries its author's uid, the same after a rename", async () => {
    one.sendJson({ type: "message", message: "before" });
    assert.equal((await other.next((f) => f.message === "before")).uid, w1!.uid);
    await using solo = await tab(server, "dave", KEY_B + "x");
    const before = await solo.next("welcome");
    solo.sendJson({ type: "rename", name: "david" });
    await solo.next((f) => f.type === "system" && f.event === "rename");
    solo.sendJson({ type: "message", message: "after" });
    assert.equal((await other.next((f) => f.message === "after")).uid, before.uid);
  });
});

Deno.test("a public uid is a hash: stable for a user id, never showing it", () => {
  assert.equal(publicUserId("alice@example.com"), publicUserId("alice@example.com"));
  assert.notEqual(publicUserId("alice@example.com"), publicUserId("bob@example.com"));
  assert.ok(!publicUserId("alice@example.com").includes("alice"));
});
