import assert from "node:assert/strict";
import { startServer } from "./helpers/app_server.ts";
import { ENGINE_NAMES, engineEnv } from "./helpers/engine_env.ts";
import { type CloseInfo, TestClient } from "./helpers/ws_client.ts";

const RELAXED = { HANDSHAKES_PER_IP_PER_MIN: "10000", RATE_LIMIT_BURST: "1000" };

/** Opens `n` sockets at once; resolves with how many got a welcome and how the rest closed. */
async function storm(url: (i: number) => string, n: number): Promise<{
  admitted: TestClient[];
  refused: CloseInfo[];
}> {
  const clients = await Promise.all(
    Array.from({ length: n }, (_, i) => TestClient.connect(url(i))),
  );
  const admitted: TestClient[] = [];
  const refused: CloseInfo[] = [];
  await Promise.all(clients.map(async (client) => {
    const first = await Promise.race([
      client.next("welcome").then(() => "welcome" as const, () => "closed" as const),
      client.closed.then(() => "closed" as const),
    ]);
    if (first === "welcome") admitted.push(client);
    else refused.push(await client.closed);
  }));
  return { admitted, refused };
}

Deno.test("concurrent handshakes cannot pass the connection caps, on every engine", async (t) => {
  for (const engine of ENGINE_NAMES) {
    await t.step(
      `${engine}: 40 at once from one address with MAX_CONNECTIONS_PER_IP=20`,
      async () => {
        await using store = await engineEnv(engine);
        await using server = await startServer({
          ...store.env,
          ...RELAXED,
          MAX_CONNECTIONS_PER_IP: "20",
        });
        const { admitted, refused } = await storm((i) => server.url(`/ws/chat/U${i}`), 40);
        try {
          assert.equal(admitted.length, 20);
          assert.equal(refused.length, 20);
          for (const info of refused) {
            assert.deepEqual(info, {
              code: 1008,
              reason: "Too many connections from this address",
            });
          }
          assert.equal(server.app.manager.connectionCount, 20);
        } finally {
          await Promise.all(admitted.map((c) => c.close()));
        }
      },
    );

    await t.step(`${engine}: 18 at once with MAX_CONNECTIONS=10`, async () => {
      await using store = await engineEnv(engine);
      await using server = await startServer({
        ...store.env,
        ...RELAXED,
        MAX_CONNECTIONS: "10",
        MAX_CONNECTIONS_PER_IP: "100",
      });
      const { admitted, refused } = await storm((i) => server.url(`/ws/chat/U${i}`), 18);
      try {
        assert.equal(admitted.length, 10);
        assert.equal(refused.length, 8);
        for (const info of refused) assert.equal(info.code, 1008);
      } finally {
        await Promise.all(admitted.map((c) => c.close()));
      }
    });
  }
});
