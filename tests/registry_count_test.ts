import assert from "node:assert/strict";
import { Client } from "../chat/client.ts";
import type { Broker } from "../chat/engines/engine.ts";
import { Registry } from "../chat/registry.ts";
import { FakeSocket } from "./helpers/fakes.ts";

const broker = { subscribe() {}, unsubscribe() {} } as unknown as Broker;
const host = { receive() {}, closed() {} };

/** A client named `name` (a second tab when the name is held), not yet in a room. */
function connect(registry: Registry, name: string): Client {
  const init = {
    socket: new FakeSocket(),
    echo: false,
    heartbeat: false,
    userId: null,
    remoteAddr: "",
    connectedAt: 0,
    burst: 1,
  };
  const client = new Client(init, host);
  registry.add(client);
  registry.setName(client, name);
  return client;
}

/** Asserts the kept count and the first page agree with the full list of each room. */
function agrees(registry: Registry, rooms: readonly string[], what: string): void {
  for (const room of rooms) {
    const users = registry.users(room);
    assert.equal(registry.userCount(room), users.length, `${what}: the count of ${room}`);
    const page = registry.usersPage(room, 3);
    assert.deepEqual(page, { users: users.slice(0, 3), count: users.length }, `${what}: ${room}`);
  }
}

Deno.test("a room's user count follows joins, leaves, second tabs and renames", async (t) => {
  await t.step("one person's tabs count once; a rename away from them counts a new user", () => {
    const registry = new Registry(broker, undefined);
    const [tab1, tab2] = [connect(registry, "ann"), connect(registry, "ann")];
    registry.join(tab1!, "lobby");
    registry.join(tab2!, "lobby");
    const bob = connect(registry, "bob");
    registry.join(bob, "lobby");
    assert.equal(registry.userCount("lobby"), 2);
    registry.setName(tab2!, "cleo");
    assert.deepEqual(registry.users("lobby"), ["ann", "cleo", "bob"]);
    assert.equal(registry.userCount("lobby"), 3);
    registry.setName(bob, "bea");
    assert.equal(registry.userCount("lobby"), 3);
    registry.leave(tab1!, "lobby");
    registry.leave(tab1!, "lobby");
    assert.equal(registry.userCount("lobby"), 2);
    registry.leave(tab2!, "lobby");
    registry.leave(bob, "lobby");
    assert.equal(registry.userCount("lobby"), 0);
    assert.deepEqual(registry.usersPage("lobby", 3), { users: [], count: 0 });
  });

  await t.step("2,000 random joins, leaves, renames and departures keep it exact", () => {
    // A fixed sequence (xorshift), so a failure is the same on every run.
    let seed = 0x2545f491;
    const next = (n: number) => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) % n;
    };
    const registry = new Registry(broker, undefined);
    const rooms = ["a", "b", "c"];
    const names = ["ann", "bob", "cleo", "dan", "eve", "fay"];
    const clients: Client[] = [];
    for (let step = 0; step < 2000; step++) {
      const op = next(5);
      const client = clients[next(Math.max(1, clients.length))];
      const room = rooms[next(rooms.length)]!;
      const name = names[next(names.length)]!;
      if (op === 0 || client === undefined) clients.push(connect(registry, name));
      else if (op === 1 && !client.rooms.includes(room)) registry.join(client, room);
      else if (op === 2) registry.leave(client, room);
      else if (op === 3 && registry.nameFreeFor(name, client)) registry.setName(client, name);
      else if (op === 4) {
        for (const r of [...client.rooms]) registry.leave(client, r);
        registry.releaseName(client);
        registry.remove(client);
        clients.splice(clients.indexOf(client), 1);
      }
      agrees(registry, rooms, `step ${step}`);
    }
  });
});
