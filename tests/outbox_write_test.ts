import assert from "node:assert/strict";
import { ConnectionManager, type ConnectOptions } from "../chat/connection_manager.ts";
import { FakeClock, FakeScheduler, FakeSocket, settle } from "./helpers/fakes.ts";

/** A socket that throws on send once told to, as a socket the runtime refuses to write to. */
class RefusingSocket extends FakeSocket {
  refusing = false;
  override send(data: string): void {
    if (this.refusing) throw new Error("Socket refused the write");
    super.send(data);
  }
}

/** The chat texts a socket got, batched lines split. */
function texts(socket: FakeSocket): string[] {
  return socket.sent.flatMap((text) => text.split("\n"))
    .map((line) => JSON.parse(line))
    .filter((f) => f.type === "message")
    .map((f) => f.message);
}

Deno.test("a socket that throws on send is closed and does not stop anyone else's frames", async (t) => {
  for (const batch of [true, false]) {
    await t.step(batch ? "batched clients" : "one frame per message", async () => {
      const clock = new FakeClock();
      const scheduler = new FakeScheduler(clock);
      await using manager = new ConnectionManager({ clock, scheduler });
      const connect = (socket: FakeSocket, options: ConnectOptions) =>
        manager.connect(socket, { ...options, batch });
      // First in the room: the fan-out and the flush meet it before the others.
      const refusing = new RefusingSocket();
      connect(refusing, { username: "refusing" });
      const others = [new FakeSocket(), new FakeSocket(), new FakeSocket()];
      others.forEach((socket, i) => connect(socket, { username: `user${i}` }));
      const sender = manager.connect(new FakeSocket(), { username: "sender" });
      await settle();
      refusing.refusing = true;
      sender.receive("one");
      await settle();
      sender.receive("two");
      await settle();
      for (const socket of others) assert.deepEqual(texts(socket), ["one", "two"]);
      // Closed a tick later, as every close.
      scheduler.advance(0);
      assert.equal(refusing.closeCode(), 1011);
    });
  }
});
