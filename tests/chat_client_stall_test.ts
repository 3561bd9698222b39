import assert from "node:assert/strict";
import { ChatClient, newKey } from "../client/mod.ts";
import { startServer, type TestServer } from "./helpers/app_server.ts";
import { eventually } from "./helpers/eventually.ts";

/**
 * A ChatClient whose socket can stall: while `stalled`, what it sends is
 * held, as a phone's network holds it, and `release` lets it all go at
 * once, so frames the client spaced out reach the server together.
 */
function stallingClient(server: TestServer, key: string) {
  const held: string[] = [];
  const link = { stalled: false, socket: undefined as WebSocket | undefined };
  const client = new ChatClient({
    url: server.httpUrl("/"),
    username: "alice",
    key,
    webSocket: (url, protocols) => {
      const socket = new WebSocket(url, protocols);
      const send = socket.send.bind(socket);
      socket.send = (data) => {
        if (link.stalled) held.push(String(data));
        else send(data);
      };
      link.socket = socket;
      return socket;
    },
  });
  const release = () => {
    link.stalled = false;
    for (const data of held.splice(0)) link.socket!.send(data);
  };
  const errors: string[] = [];
  client.on("error", (frame) => errors.push(`${frame.code}: ${frame.message}`));
  return { client, held, link, release, errors };
}

/** The type of each frame held. */
const types = (held: string[]) => held.map((data) => JSON.parse(data).type);

Deno.test("frames a stalled network bunched past the server's rate limit are not shown as errors", async (t) => {
  // The client keeps one frame of the burst in reserve: three frames sent a token apart
  // reach a server whose bucket holds two, and the third is refused.
  await using server = await startServer({ RATE_LIMIT_PER_S: "4", RATE_LIMIT_BURST: "2" });
  const key = newKey();
  const alice = stallingClient(server, key);
  await using _ = alice.client;
  const stored: string[] = [];
  alice.client.on("message", ({ frame }) => stored.push(frame.message));
  alice.client.connect();
  await eventually("open", () => alice.client.state === "open");
  const rested = () => new Promise((resolve) => setTimeout(resolve, 600));

  await t.step("a typing notice refused: no error, the messages stored", async () => {
    await rested();
    alice.link.stalled = true;
    const fates = [alice.client.send("m1"), alice.client.send("m2")];
    await eventually("the second message went", () => alice.held.length === 2);
    await eventually("a token to spare for typing", () => {
      alice.client.typing();
      return alice.held.length === 3;
    });
    assert.deepEqual(types(alice.held), ["message", "message", "typing"]);
    alice.release();
    assert.deepEqual((await Promise.all(fates)).map((f) => f.status), ["stored", "stored"]);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.deepEqual(alice.errors, []);
  });

  await t.step("a read position refused: sent again and stored, no error", async () => {
    await eventually("both stored came back", () => stored.length === 2);
    await rested();
    alice.link.stalled = true;
    const fates = [alice.client.send("m3"), alice.client.send("m4")];
    await eventually("the second message went", () => alice.held.length === 2);
    assert.equal(alice.client.markRead(), true);
    await eventually("the read position went", () => alice.held.length === 3);
    assert.deepEqual(types(alice.held), ["message", "message", "read"]);
    alice.release();
    assert.deepEqual((await Promise.all(fates)).map((f) => f.status), ["stored", "stored"]);
    // A new tab of the same person is given the stored position: m2, so two unread.
    await eventually("the position was stored", async () => {
      await using tab = new ChatClient({ url: server.httpUrl("/"), username: "alice", key });
      tab.connect();
      await eventually("the tab is open", () => tab.state === "open");
      await new Promise((resolve) => setTimeout(resolve, 100));
      return tab.unread() === 2;
    }, { timeoutMs: 5_000, intervalMs: 200 });
    assert.deepEqual(alice.errors, []);
  });
});
