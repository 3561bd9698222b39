import assert from "node:assert/strict";
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
    await t.step("a malformed uid is bad_message", async () => {
      bob.client.sendJson({ type: "conversation", with: "alice" });
      assert.equal((await bob.client.next("error")).code, "bad_message");
    });
  } finally {
    await alice.client.close();
    await bob.client.close();
  }
});
