import assert from "node:assert/strict";
import { serveBaseline } from "../bench/baseline_server.ts";
import { eventually } from "./helpers/eventually.ts";
import { TestClient } from "./helpers/ws_client.ts";

/** A client of the baseline on `?query`. */
function client(port: number, query: string): Promise<TestClient> {
  return TestClient.connect(`ws://127.0.0.1:${port}/ws?${query}`);
}

/** Every line of every frame `c` received: a batched frame holds several. */
function lines(c: TestClient): string[] {
  return c.texts.flatMap((text) => text.split("\n"));
}

/**
 * Waits until every client is a member of the room (the server adds a socket
 * on its own `open`, after the client's), then clears what they received.
 */
async function settle(sender: TestClient, all: TestClient[]): Promise<void> {
  await eventually("every member", () => {
    if (all.every((c) => lines(c).includes("probe"))) return true;
    sender.send("probe");
    return false;
  });
  // Probes still in flight arrive before this, since they come from one socket.
  sender.send("sync");
  await eventually("the sync", () => all.every((c) => lines(c).includes("sync")));
  for (const c of all) c.clear();
}

Deno.test("the baseline sends every frame unchanged to every socket of its room", async (t) => {
  const server = serveBaseline();
  const { port } = server.addr;
  try {
    await t.step("one frame per message, and never to another room", async () => {
      await using a = await client(port, "room=r");
      await using b = await client(port, "room=r");
      await using other = await client(port, "room=s");
      await settle(a, [a, b]);
      for (const text of ["one", "two", "three"]) a.send(text);
      await eventually("three frames", () => b.texts.length === 3 && a.texts.length === 3);
      assert.deepEqual(b.texts, ["one", "two", "three"]);
      assert.deepEqual(a.texts, ["one", "two", "three"]);
      assert.deepEqual(other.texts, []);
    });

    await t.step("?batch=1 gets a turn's frames as one frame, a line each", async () => {
      await using reader = await client(port, "room=b&batch=1");
      const senders = [
        await client(port, "room=b"),
        await client(port, "room=b"),
        await client(port, "room=b"),
      ];
      try {
        await settle(senders[2]!, [reader, ...senders]);
        // Frames from several sockets sent at once usually land in one turn
        // of the server's event loop; a few rounds make sure.
        const said: string[] = [];
        for (let round = 0; round < 20 && !reader.texts.some((t) => t.includes("\n")); round++) {
          for (const s of senders) {
            said.push(`${round}.${said.length}`);
            s.send(said.at(-1)!);
          }
          // Frames of different sockets keep no order: wait for all of them.
          await eventually("the round", () => said.every((m) => lines(reader).includes(m)));
        }
        assert.ok(reader.texts.some((t) => t.includes("\n")), "no frame held more than one line");
        assert.deepEqual(lines(reader).toSorted(), said.toSorted());
        // Sockets that did not ask for batches still get one frame per message.
        await eventually("the senders' copies", () => senders[0]!.texts.includes(said.at(-1)!));
        assert.ok(senders[0]!.texts.every((t) => !t.includes("\n")));
      } finally {
        for (const s of senders) await s[Symbol.asyncDispose]();
      }
    });
  } finally {
    await server.shutdown();
    await server.finished;
  }
});
