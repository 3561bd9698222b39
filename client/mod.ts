/**
 * The chat server's client library, for Deno and the browser: the
 * {@linkcode ChatClient} and the protocol's types and codes it speaks.
 *
 * @example
 * ```ts ignore
 * import { ChatClient } from "@chat/deno-chat/client";
 *
 * const chat = new ChatClient({ url: "http://localhost:8000", username: "alice" });
 * chat.on("message", ({ frame }) => console.log(`${frame.sender}: ${frame.message}`));
 * chat.connect();
 * ```
 *
 * @module
 */

export { ChatClient } from "./chat_client.ts";
export {
  type ChatClientEvents,
  type ChatClientOptions,
  ChatError,
  type ConnectionState,
  type StateEvent,
  type StoredEvent,
} from "./events.ts";
export { newKey } from "./keys.ts";
export { READ_INTERVAL_MS, type ReadPosition, type ReadTarget } from "./read_state.ts";
export { mentions } from "./mentions.ts";
export { type BackoffOptions, DEFAULT_BACKOFF, reconnectDelay } from "./backoff.ts";
export { describeClose, isFinalClose, PING_TIMEOUT_REASON } from "./close_labels.ts";
export type { Unsubscribe } from "./emitter.ts";
export type { Fate, RefusalCode, Sending } from "./send_queue.ts";
export { TIMERS, type Timers } from "./timers.ts";
export * from "../chat/protocol.ts";
