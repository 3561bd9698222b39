import assert from "node:assert/strict";
import { eventually } from "./helpers/eventually.ts";
import { startServer, type TestServer } from "./helpers/app_server.ts";
import { TestClient } from "./helpers/ws_client.ts";

const CUSTOM_CODES = Array.from({ length: 300 }, (_, i) => 3000 + i);
const BATCH = 25;

/** The `code` labels of `chat_closes_total` and their values. */
function closeSeries(metrics: string): Map<string, number> {
  const series = new Map<string, number>();
  for (const match of metrics.matchAll(/^chat_closes_total\{code="([^"]*)"\} (\d+)$/gm)) {
    series.set(match[1]!, Number(match[2]));
  }
  return series;
}

/** Opens one chat client per code, `BATCH` at a time, and closes each with its code. */
async function closeWith(server: TestServer, codes: readonly number[]): Promise<void> {
  for (let i = 0; i < codes.length; i += BATCH) {
    const batch = codes.slice(i, i + BATCH);
    const clients = await Promise.all(
      batch.map(() => TestClient.connect(server.url("/ws/chat"))),
    );
    await Promise.all(clients.map((client, j) => client.close(batch[j])));
  }
}

/** Waits until the server counted `total` closes, then reads its series. */
async function seriesAfter(server: TestServer, total: number): Promise<Map<string, number>> {
  const closes = server.app.manager.metrics.closes;
  await eventually("every close counted", () => {
    let counted = 0;
    for (const count of closes.values()) counted += count;
    return counted === total;
  });
  const res = await fetch(server.httpUrl("/metrics"));
  return closeSeries(await res.text());
}

Deno.test("close codes chosen by clients outside the documented table share the label other", async (t) => {
  await using server = await startServer({
    MAX_CONNECTIONS_PER_IP: "1000",
    HANDSHAKES_PER_IP_PER_MIN: "100000",
  });
  await t.step("300 custom codes make one series", async () => {
    await closeWith(server, CUSTOM_CODES);
    const series = await seriesAfter(server, CUSTOM_CODES.length);
    assert.deepEqual([...series], [["other", CUSTOM_CODES.length]]);
  });
  await t.step("a documented code keeps its own series", async () => {
    await closeWith(server, [1000, 1000]);
    const series = await seriesAfter(server, CUSTOM_CODES.length + 2);
    assert.equal(series.get("1000"), 2);
    assert.equal(series.get("other"), CUSTOM_CODES.length);
    assert.equal(series.size, 2);
  });
});
