/**
 * Who the client is: the username (asked for, then as the server gave it
 * or a rename changed it), the public uid from the last welcome, and the
 * rename under way, which the room's rename notice completes.
 *
 * @module
 */

import {
  type MessageFrame,
  nameKey,
  type PrivateFrame,
  type SystemFrame,
  type WelcomeFrame,
} from "../chat/protocol.ts";
import type { Emitter } from "./emitter.ts";
import { type ChatClientEvents, ChatError } from "./events.ts";

interface PendingRename {
  resolve: (name: string) => void;
  reject: (error: ChatError) => void;
  cid: string;
}

/** What an {@linkcode Identity} needs from its client. */
export interface IdentityOptions {
  /** The username asked for; "" for one the server gives. */
  username: string;
  /** The client's events, which renames are emitted as. */
  events: Emitter<ChatClientEvents>;
  /** Sends a frame now; false when not connected. */
  write: (frame: object) => boolean;
}

/** How the client stands when a rename is asked for. */
export interface RenameContext {
  /** The client id the `rename` frame carries, which an error answering it echoes. */
  cid: string;
  /** Whether the socket was welcomed. */
  welcomed: boolean;
  /** Whether the client is in a room, where the server's rename notice will come. */
  inRoom: boolean;
}

/** A client's username and uid, and the rename under way. */
export class Identity {
  readonly #events: Emitter<ChatClientEvents>;
  readonly #write: (frame: object) => boolean;
  #username: string;
  #uid = "";
  #rename: PendingRename | undefined;

  /** The identity asked for, before any welcome. */
  constructor(options: IdentityOptions) {
    this.#username = options.username;
    this.#events = options.events;
    this.#write = options.write;
  }

  /** The username: the one asked for, then the one the server gave. */
  get username(): string {
    return this.#username;
  }

  /** The public uid of the last welcome; "" before one. */
  get uid(): string {
    return this.#uid;
  }

  /** Adopts a welcome's username and uid. */
  welcome(frame: WelcomeFrame): void {
    this.#username = frame.username;
    this.#uid = frame.uid ?? "";
  }

  /** Whether `name` is this user's, compared as the server compares names. */
  isMe(name: string): boolean {
    return nameKey(name) === nameKey(this.#username);
  }

  /** Whether this user sent a frame: by uid when it carries one, else by name. */
  sent(frame: MessageFrame | PrivateFrame): boolean {
    return frame.uid !== undefined ? frame.uid === this.#uid : frame.username === this.#username;
  }

  /** Asks for a rename; resolves with the new name as the server spells it. */
  rename(name: string, context: RenameContext): Promise<string> {
    return new Promise((resolve, reject) => {
      if (this.#rename !== undefined) {
        reject(new ChatError("rename_pending", `A rename is under way: ${name}`));
        return;
      }
      if (this.isMe(name) && context.welcomed) {
        // The server answers nothing to a rename to one's own name.
        resolve(this.#username);
        return;
      }
      if (!this.#write({ type: "rename", name, cid: context.cid })) {
        reject(new ChatError("closed", "Not connected"));
        return;
      }
      // In no room there is no notice to wait for: the server renamed us or sent an error.
      if (!context.inRoom) return resolve(name);
      this.#rename = { resolve, reject, cid: context.cid };
    });
  }

  /** Takes a live notice that changed a room's users: one renaming this user completes a rename. */
  presence(frame: SystemFrame): void {
    if (frame.event !== "rename" || frame.user === undefined) return;
    if (!this.isMe(frame.old_name ?? "")) return;
    const from = this.#username;
    this.#username = frame.user;
    const pending = this.#rename;
    this.#rename = undefined;
    this.#events.emit("renamed", { from, to: frame.user });
    pending?.resolve(frame.user);
  }

  /** Refuses the rename of client id `cid` with `error`; false when it is not the one waiting. */
  refuse(cid: string, error: ChatError): boolean {
    const pending = this.#rename;
    if (pending?.cid !== cid) return false;
    this.#rename = undefined;
    pending.reject(error);
    return true;
  }

  /** Fails the rename waiting for its notice, with `closed`. */
  fail(reason: string): void {
    const pending = this.#rename;
    this.#rename = undefined;
    pending?.reject(new ChatError("closed", reason));
  }
}
