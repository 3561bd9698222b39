/**
 * The quota of new rooms per client address: entering a room no local
 * client is in creates state (the room's registry entry, its history in
 * the engine), so one address may do it `roomsPerIpPerMin` times a minute.
 * Entering a room that has members costs nothing.
 *
 * @module
 */

import type { Client } from "./client.ts";
import type { Clock } from "./clock.ts";
import { KeyedRateLimiter } from "./rate_limit.ts";
import type { Registry } from "./registry.ts";

/** The quota's defaults, as {@linkcode ConnectionManagerOptions} names them. */
export const DEFAULT_ROOM_QUOTA: Readonly<{ roomsPerIpPerMin: number }> = Object.freeze({
  /** Rooms without local members one address may enter per minute (ROOMS_PER_IP_PER_MIN). */
  roomsPerIpPerMin: 60,
});

/** Options of {@linkcode RoomQuota}. */
export interface RoomQuotaOptions {
  /** Who is where: a room is new when it has no local member. */
  registry: Registry;
  /** The manager's clock. */
  clock: Clock;
  /** See {@linkcode DEFAULT_ROOM_QUOTA}. */
  roomsPerIpPerMin: number;
}

/** Counts the new rooms each address enters. */
export class RoomQuota {
  #registry: Registry;
  #limiter: KeyedRateLimiter;

  /** A quota of `roomsPerIpPerMin` new rooms per address, refilled evenly over the minute. */
  constructor(options: RoomQuotaOptions) {
    this.#registry = options.registry;
    const burst = options.roomsPerIpPerMin;
    this.#limiter = new KeyedRateLimiter({ ratePerS: burst / 60, burst, clock: options.clock });
  }

  /**
   * Whether the client may enter `room`; takes from its address's quota
   * when the room has no local member. A client without an address (an
   * in-process test) is not counted.
   */
  allows(client: Client, room: string): boolean {
    if (client.remoteAddr === "" || this.#registry.rooms.has(room)) return true;
    return this.#limiter.take(client.remoteAddr) === 0;
  }
}
