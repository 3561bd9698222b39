import assert from "node:assert/strict";
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
