import assert from "node:assert/strict";
import { signJwt } from "../chat/auth/jwt.ts";
import { startServer, type TestServer } from "./helpers/app_server.ts";
import { TestClient } from "./helpers/ws_client.ts";

const KEYS = {
  alice: "alice-key-0123456789abcdef",
  bob: "bob-key-0123456789abcdefgh",
  mallory: "mallory-key-0123456789abcd",
};

async function tab(server: TestServer, name: string, key: string) {
  const client = await TestClient.connect(server.url(`/ws/chat/${name}`), {
    protocols: ["chat", `key.${key}`],
  });
  return { client, uid: String((await client.next("welcome")).uid) };
}

Deno.test("a private conversation between two identities is kept and read again by them only", async (t) => {
  await using server = await startServer();
  const alice = await tab(server, "alice", KEYS.alice);
  const bob = await tab(server, "bob", KEYS.bob);
  try {
    await t.step("a private frame names the target's uid", async () => {
      alice.client.sendJson({ type: "private", to: "bob", message: "p1" });
      const got = await bob.client.next((f) => f.message === "p1");
      assert.equal(got.to_uid, bob.uid);
      assert.equal(got.uid, alice.uid);
      bob.client.sendJson({ type: "private", to: "alice", message: "p2" });
      await alice.client.next((f) => f.message === "p2");
      alice.client.sendJson({ type: "private", to: "bob", message: "p3" });
      await bob.client.next((f) => f.message === "p3");
    });
    await t.step("a new tab of bob reads the conversation again", async () => {
      const again = await tab(server, "bob", KEYS.bob);
      try {
        again.client.sendJson({ type: "conversation", with: alice.uid });
        const frame = await again.client.next("conversation");
        assert.deepEqual((frame.history as { message: string }[]).map((f) => f.message), [
          "p1",
          "p2",
          "p3",
        ]);
        assert.equal(frame.with, alice.uid);
        const first = (frame.history as { id: number }[])[0]!.id;
        again.client.sendJson({ type: "conversation", with: alice.uid, since: first });
        const later = await again.client.next((f) => f.type === "conversation" && f !== frame);
        assert.deepEqual((later.history as { message: string }[]).map((f) => f.message), [
          "p2",
          "p3",
        ]);
      } finally {
        await again.client.close();
      }
    });
    await t.step("someone who takes alice's name later reads nothing of it", async () => {
      await alice.client.close();
      const mallory = await tab(server, "alice", KEYS.mallory);
      try {
        for (const other of [bob.uid, alice.uid]) {
          mallory.client.sendJson({ type: "conversation", with: other });
          const frame = await mallory.client.next((f) =>
            f.type === "conversation" && f.with === other
          );
          assert.deepEqual(frame.history, []);
        }
      } finally {
        await mallory.client.close();
      }
    });
    await t.step("the history API serves it to a participant's key only", async () => {
      const get = async (key?: string, uid = alice.uid) => {
        const headers: Record<string, string> = key === undefined ? {} : { "x-chat-key": key };
        const res = await fetch(server.httpUrl(`/api/conversations/${uid}/messages`), { headers });
        return { status: res.status, body: await res.json() };
      };
      const bobs = await get(KEYS.bob);
      assert.equal(bobs.status, 200);
      assert.deepEqual(bobs.body.messages.map((f: { message: string }) => f.message), [
        "p1",
        "p2",
        "p3",
      ]);
      assert.deepEqual((await get(KEYS.mallory)).body.messages, []);
      assert.equal((await get()).status, 401);
      assert.equal((await get(KEYS.bob, "alice")).status, 400);
    });
    await t.step("a malformed uid is bad_message", async () => {
      bob.client.sendJson({ type: "conversation", with: "alice" });
      assert.equal((await bob.client.next("error")).code, "bad_message");
    });
  } finally {
    await alice.client.close();
    await bob.client.close();
  }
});

Deno.test("with AUTH_SECRET a conversation is the two tokens' subs, over WebSocket and the API", async () => {
  const secret = "conversation-test-secret-0123456789";
  await using server = await startServer({ AUTH_SECRET: secret });
  const now = Math.floor(Date.now() / 1000);
  const token = (sub: string, name: string) =>
    signJwt({ sub, name, iat: now, exp: now + 600 }, secret);
  const [aliceJwt, bobJwt] = [await token("sub-a", "alice"), await token("sub-b", "bob")];
  await using alice = await TestClient.connect(server.url(`/ws/chat/x?token=${aliceJwt}`));
  await using bob = await TestClient.connect(server.url(`/ws/chat/y?token=${bobJwt}`));
  const aliceUid = String((await alice.next("welcome")).uid);
  await bob.next("welcome");
  alice.sendJson({ type: "private", to: "bob", message: "signed" });
  await bob.next((f) => f.message === "signed");
  const res = await fetch(server.httpUrl(`/api/conversations/${aliceUid}/messages`), {
    headers: { authorization: `Bearer ${bobJwt}` },
  });
  const body = await res.json();
  assert.deepEqual(body.messages.map((f: { message: string }) => f.message), ["signed"]);
});
