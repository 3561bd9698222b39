import assert from "node:assert/strict";
import { serveBaseline } from "../bench/baseline_server.ts";
import { eventually } from "./helpers/eventually.ts";

/** A client of the baseline that keeps every frame it receives. */
async function client(port: number, query: string) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?${query}`);
  const texts: string[] = [];
  ws.onmessage = (event) => texts.push(event.data as string);
  const closed = new Promise((resolve) => ws.onclose = resolve);
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = reject;
  });
  return {
    ws,
    texts,
    lines: () => texts.flatMap((text) => text.split("\n")),
    async [Symbol.asyncDispose]() {
      ws.close();
      await closed;
    },
  };
}

type Client = Awaited<ReturnType<typeof client>>;

/**
 * Waits until every client is a member of the room (the server adds a socket
 * on its own `open`, after the client's), then clears what they received.
 */
async function settle(sender: Client, all: Client[]): Promise<void> {
  await eventually("every member", () => {
    if (all.every((c) => c.lines().includes("probe"))) return true;
    sender.ws.send("probe");
    return false;
  });
  // Probes still in flight arrive before this, since they come from one socket.
  sender.ws.send("sync");
  await eventually("the sync", () => all.every((c) => c.lines().includes("sync")));
  for (const c of all) c.texts.length = 0;
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
      for (const text of ["one", "two", "three"]) a.ws.send(text);
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
            s.ws.send(said.at(-1)!);
          }
          // Frames of different sockets keep no order: wait for all of them.
          await eventually("the round", () => said.every((m) => reader.lines().includes(m)));
        }
        assert.ok(reader.texts.some((t) => t.includes("\n")), "no frame held more than one line");
        assert.deepEqual(reader.lines().toSorted(), said.toSorted());
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
