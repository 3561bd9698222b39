/**
 * A socket that drops every frame, to measure the manager alone.
 *
 * @module
 */

import type { ChatSocket } from "../chat/connection_manager.ts";

/** An open socket that sends nowhere and never buffers. */
export class NullSocket implements ChatSocket {
  /** Always 0: nothing is ever queued. */
  bufferedAmount = 0;
  /** Open until closed. */
  readyState = 1;
  /** Drops the frame. */
  send(_data: string): void {}
  /** Marks the socket closed. */
  close(): void {
    this.readyState = 3;
  }
}
