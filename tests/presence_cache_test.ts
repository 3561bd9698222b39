import assert from "node:assert/strict";
import type { Presence } from "../chat/engines/engine.ts";
import { PRESENCE_CACHE_MS, PresenceCache } from "../chat/presence_cache.ts";
import { FakeClock } from "./helpers/fakes.ts";

/** A presence that counts its reads of each room and fails when told to. */
function countingPresence() {
  const reads: string[] = [];
  const state = { failing: false };
  const presence = {
    users(room: string) {
      reads.push(room);
      return state.failing ? Promise.reject(new Error("Store down")) : Promise.resolve([room]);
    },
  } as unknown as Presence;
  return { presence, reads, state };
}

Deno.test("a room's users on every process are read once for the joins of half a second", async (t) => {
  await t.step("reused within the window, read again after it", async () => {
    const clock = new FakeClock();
    const { presence, reads } = countingPresence();
    const cache = new PresenceCache({ presence, clock });
    for (let i = 0; i < 100; i++) assert.deepEqual(await cache.users("lobby"), ["lobby"]);
    await cache.users("dev");
    assert.deepEqual(reads, ["lobby", "dev"]);
    clock.time += PRESENCE_CACHE_MS;
    await cache.users("lobby");
    assert.deepEqual(reads, ["lobby", "dev", "lobby"]);
  });
  await t.step("a failed read says undefined, and is tried again after the window", async () => {
    const clock = new FakeClock();
    const { presence, reads, state } = countingPresence();
    const cache = new PresenceCache({ presence, clock });
    state.failing = true;
    assert.equal(await cache.users("lobby"), undefined);
    state.failing = false;
    clock.time += PRESENCE_CACHE_MS;
    assert.deepEqual(await cache.users("lobby"), ["lobby"]);
    assert.equal(reads.length, 2);
  });
});
