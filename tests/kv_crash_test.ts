import assert from "node:assert/strict";
import type { Frame } from "./helpers/fakes.ts";
import { spawnServer } from "./helpers/server_process.ts";
import { TestClient } from "./helpers/ws_client.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

function start(kvPath: string) {
  return spawnServer({
    args: ["run", "--allow-all", "--unstable-kv", MAIN],
    env: {
      CHAT_ENGINE: "kv",
      KV_PATH: kvPath,
      PORT: "0",
      HOST: "127.0.0.1",
      RATE_LIMIT_PER_S: "10000",
      RATE_LIMIT_BURST: "1000",
    },
  });
}

Deno.test("kv: every acknowledged message survives kill -9 and a restart, in order", async () => {
  const dir = await Deno.makeTempDir({ prefix: "chat_crash_" });
  try {
    const kvPath = `${dir}/chat.kv`;
    const sent = Array.from({ length: 300 }, (_, i) => `m${i + 1}`);
    const acked: Frame[] = [];
    {
      await using server = await start(kvPath);
      const alice = await TestClient.connect(`ws://127.0.0.1:${server.port}/ws/chat/alice?room=r`);
      await alice.next("welcome");
      for (const message of sent) alice.sendJson({ type: "message", room: "r", message });
      // Kill while messages are still being committed: after 50 acknowledgements.
      await alice.next((f) => f.type === "message" && f.message === "m50", 15_000);
      server.kill("SIGKILL");
      const status = await server.status;
      assert.equal(status.signal, "SIGKILL");
      await alice.closed;
      // The sender's own echo is the acknowledgement.
      // Counted once per id: this test guards durability, and a frame delivered twice is one
      // acknowledgement, not two.
      const echoes = alice.frames.filter((f) => f.type === "message" && f.username === "alice");
      acked.push(...new Map(echoes.map((f) => [f.id, f])).values());
    }
    assert.ok(acked.length >= 50, `acked ${acked.length}`);

    await using server = await start(kvPath);
    const res = await fetch(`http://127.0.0.1:${server.port}/api/rooms/r/messages?limit=200`);
    const older = await fetch(
      `http://127.0.0.1:${server.port}/api/rooms/r/messages?limit=200&before=201`,
    );
    const pages = [(await older.json()).messages, (await res.json()).messages] as Frame[][];
    // Both pages together, without the overlap, oldest first.
    const byId = new Map<number, Frame>();
    for (const page of pages) for (const f of page) byId.set(f.id as number, f);
    const stored = [...byId.values()].sort((a, b) => (a.id as number) - (b.id as number))
      .filter((f) => f.type === "message");
    const texts = stored.map((f) => f.message);
    // Nothing acknowledged is lost, nothing is out of order, nothing was invented.
    assert.deepEqual(texts, sent.slice(0, texts.length));
    assert.ok(texts.length >= acked.length, `stored ${texts.length} < acked ${acked.length}`);
    for (const f of acked) {
      assert.deepEqual(byId.get(f.id as number)?.message, f.message, `acked ${f.message}`);
    }
    const ids = stored.map((f) => f.id as number);
    assert.ok(ids.every((id, i) => i === 0 || id > ids[i - 1]!));

    // Alice comes back under her name (the crashed run holds no names) and
    // recovers from her last acknowledgement.
    const lastAck = acked.at(-1)!;
    const alice = await TestClient.connect(
      `ws://127.0.0.1:${server.port}/ws/chat/alice?room=r&since=${lastAck.id}`,
    );
    await using _alice = alice;
    const welcome = await alice.next("welcome");
    assert.equal(welcome.recovered, true);
    const recovered = (welcome.history as Frame[]).filter((f) => f.type === "message");
    assert.deepEqual(
      recovered.map((f) => f.message),
      texts.slice(texts.indexOf(lastAck.message as string) + 1),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
