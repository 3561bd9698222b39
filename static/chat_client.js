// chat/protocol_codes.ts
var CloseCode = {
  /** Normal closure. */
  Normal: 1e3,
  /** The server is shutting down. */
  GoingAway: 1001,
  /** Policy violation: server full, invalid name, unauthorized, rate limit. */
  PolicyViolation: 1008,
  /** A frame over MAX_MESSAGE_BYTES. */
  MessageTooBig: 1009,
  /** An unexpected server error. */
  InternalError: 1011,
  /** No frame within HEARTBEAT_TIMEOUT_MS on the heartbeat route. */
  HeartbeatTimeout: 4e3,
  /** An operator closed the only room the socket was in. */
  RoomClosed: 4001,
  /** An operator kicked or banned the user. */
  Kicked: 4003,
  /** The socket's send buffer passed MAX_BUFFERED_BYTES. */
  SlowConsumer: 4008,
  /** The username is already online. */
  UsernameInUse: 4009
};
var CloseReason = {
  ServerShuttingDown: "Server shutting down",
  ServerFull: "Server is full",
  MessageTooBig: "Message too big",
  HeartbeatTimeout: "Heartbeat timeout",
  RoomClosed: "Room closed",
  Kicked: "Kicked",
  Banned: "Banned",
  SlowConsumer: "Slow consumer",
  UsernameInUse: "Username already in use",
  Unauthorized: "Unauthorized",
  RateLimitExceeded: "Rate limit exceeded",
  TooManyConnections: "Too many connections from this address"
};
var ErrorCode = {
  /** The text looked like a JSON object (started with `{`) but did not parse. */
  BadJson: "bad_json",
  /** The JSON parsed but a field is missing or has the wrong type. */
  BadMessage: "bad_message",
  /** The `type` field names no known frame. */
  UnknownType: "unknown_type",
  /** The message text is empty after trimming. */
  EmptyMessage: "empty_message",
  /** A binary frame; the protocol is JSON text only. */
  BinaryNotSupported: "binary_not_supported",
  /** The private message target is not online. */
  UserNotFound: "user_not_found",
  /** A username that breaks the naming rules. */
  InvalidName: "invalid_name",
  /** A rename to a name someone else has. */
  NameTaken: "name_taken",
  /** A rename to a name that is banned. */
  Banned: "banned",
  /** A room name that breaks the naming rules. */
  InvalidRoom: "invalid_room",
  /** The connection is not in the room it addressed. */
  NotInRoom: "not_in_room",
  /** The connection is in MAX_ROOMS_PER_CONNECTION rooms already. */
  TooManyRooms: "too_many_rooms",
  /** The frame was dropped by the per-connection rate limit. */
  RateLimited: "rate_limited",
  /** The storage engine could not commit the message; it was not sent. */
  Unavailable: "unavailable",
  /** A read position or the list of conversations needs an identity: a token or a browser key. */
  NoIdentity: "no_identity",
  /** The frame is not allowed on this route (for example rename on `/ws`). */
  NotAllowed: "not_allowed"
};

// chat/protocol_reads.ts
var CONVERSATIONS_LISTED = 20;

// chat/names.ts
var MAX_NAME_LENGTH = 32;
var NAME_PATTERN = /^[\p{L}\p{M}\p{N} _.\-]+$/u;
var INVISIBLE = /[\p{Default_Ignorable_Code_Point}\u115F\u1160\u3164\uFFA0]/u;
var LETTER_OR_DIGIT = /[\p{L}\p{N}]/u;
var ANY_SCRIPT = /[\p{Script=Common}\p{Script=Inherited}]/u;
var RECOMMENDED_SCRIPTS = [
  "Arabic",
  "Armenian",
  "Bengali",
  "Bopomofo",
  "Cyrillic",
  "Devanagari",
  "Ethiopic",
  "Georgian",
  "Greek",
  "Gujarati",
  "Gurmukhi",
  "Han",
  "Hangul",
  "Hebrew",
  "Hiragana",
  "Kannada",
  "Katakana",
  "Khmer",
  "Lao",
  "Latin",
  "Malayalam",
  "Myanmar",
  "Oriya",
  "Sinhala",
  "Tamil",
  "Telugu",
  "Thaana",
  "Thai",
  "Tibetan"
];
var SCRIPT_PATTERNS = RECOMMENDED_SCRIPTS.map((script) => [
  script,
  new RegExp(`\\p{Script=${script}}`, "u")
]);
var MIXES = [
  /* @__PURE__ */ new Set([
    "Latin",
    "Han",
    "Hiragana",
    "Katakana"
  ]),
  /* @__PURE__ */ new Set([
    "Latin",
    "Han",
    "Bopomofo"
  ]),
  /* @__PURE__ */ new Set([
    "Latin",
    "Han",
    "Hangul"
  ])
];
var RESERVED = "system";
var RESERVED_LOOKALIKES = {
  "\u0455": "s",
  "\u0443": "y",
  "\u04AF": "y",
  "\u0442": "t",
  "\u0435": "e",
  "\u043C": "m",
  "\uA731": "s",
  "\u028F": "y",
  "\u1D1B": "t",
  "\u1D07": "e",
  "\u1D0D": "m"
};
function normalizeName(raw) {
  if (INVISIBLE.test(raw)) return void 0;
  const name = raw.normalize("NFKC").trim();
  if (name.length === 0 || [
    ...name
  ].length > MAX_NAME_LENGTH) return void 0;
  if (!NAME_PATTERN.test(name) || INVISIBLE.test(name) || !LETTER_OR_DIGIT.test(name)) {
    return void 0;
  }
  const scripts = scriptsOf(name);
  return scripts !== void 0 && oneScript(scripts) ? name : void 0;
}
function nameKey(name) {
  return name.normalize("NFKC").toUpperCase().toLowerCase().normalize("NFKC");
}
function roomName(raw) {
  const name = normalizeName(raw);
  return name === void 0 ? void 0 : nameKey(name);
}
function isReservedName(name) {
  const key = nameKey(name);
  if (key === RESERVED) return true;
  if (key.length !== RESERVED.length) return false;
  return [
    ...key
  ].map((c) => RESERVED_LOOKALIKES[c] ?? c).join("") === RESERVED;
}
function scriptsOf(name) {
  const scripts = /* @__PURE__ */ new Set();
  for (const char of name) {
    if (ANY_SCRIPT.test(char)) continue;
    const script = SCRIPT_PATTERNS.find(([, pattern]) => pattern.test(char))?.[0];
    if (script === void 0) return void 0;
    scripts.add(script);
  }
  return scripts;
}
function oneScript(scripts) {
  if (scripts.size <= 1) return true;
  return MIXES.some((mix) => [
    ...scripts
  ].every((script) => mix.has(script)));
}

// chat/protocol_parse.ts
var CHAT_FRAME_HEAD = '{"type":"message","message":"';
var NEEDS_ESCAPE = /["\\\u0000-\u001f]/;
function fail(code, message) {
  return {
    ok: false,
    code,
    message
  };
}
function ok(value) {
  return {
    ok: true,
    value
  };
}
function optionalString(fields, key) {
  const value = fields[key];
  if (value === void 0) return void 0;
  return typeof value === "string" ? value : null;
}
function chatText(value) {
  if (typeof value !== "string") {
    return fail(ErrorCode.BadMessage, "Field message must be a string");
  }
  if (value.trim().length === 0) return fail(ErrorCode.EmptyMessage, "Message is empty");
  return value;
}
function plainMessage(text) {
  const message = chatText(text);
  return typeof message === "string" ? ok({
    type: "message",
    message
  }) : message;
}
var UID = /^[uc][A-Za-z0-9_-]{16}$/;
function isUid(value) {
  return UID.test(value);
}
var CID = /^[A-Za-z0-9_-]{1,64}$/;
function withCid(fields, result) {
  const cid = fields.cid;
  if (cid === void 0 || !result.ok) return result;
  if (typeof cid !== "string" || !CID.test(cid)) {
    return fail(ErrorCode.BadMessage, "Field cid must be 1 to 64 letters, digits, - or _");
  }
  return ok({
    ...result.value,
    cid
  });
}
function parseChat(fields, type) {
  return withCid(fields, parseChatFields(fields, type));
}
function parseChatFields(fields, type) {
  const text = chatText(fields.message);
  if (typeof text !== "string") return text;
  const room = optionalString(fields, "room");
  if (room === null) return fail(ErrorCode.BadMessage, "Field room must be a string");
  const short = optionalString(fields, "to");
  const to = short === void 0 ? optionalString(fields, "target_user") : short;
  if (to === null) return fail(ErrorCode.BadMessage, "Field to must be a string");
  if (to !== void 0) {
    const msg = {
      type: "private",
      to,
      message: text
    };
    return ok(room === void 0 ? msg : {
      ...msg,
      room
    });
  }
  if (type === "private") return fail(ErrorCode.BadMessage, "Field to must be a string");
  return ok(room === void 0 ? {
    type,
    message: text
  } : {
    type,
    message: text,
    room
  });
}
function requiredString(fields, key) {
  const value = fields[key];
  return typeof value === "string" ? value : fail(ErrorCode.BadMessage, `Field ${key} must be a string`);
}
function parseRecovery(fields, type) {
  const room = requiredString(fields, "room");
  if (typeof room !== "string") return room;
  const since = fields.since;
  if (since === void 0 && type === "join") return ok({
    type,
    room
  });
  if (typeof since !== "number" || !Number.isSafeInteger(since) || since < 0) {
    return fail(ErrorCode.BadMessage, "Field since must be a non-negative integer");
  }
  if (fields.epoch === void 0) return ok({
    type,
    room,
    since
  });
  const epoch = parseEpoch(fields.epoch);
  if (epoch === void 0) return fail(ErrorCode.BadMessage, "Field epoch must be an epoch");
  return ok({
    type,
    room,
    since,
    epoch
  });
}
function parseRead(fields) {
  const { room, with: other, id } = fields;
  if (room === void 0 === (other === void 0)) {
    return fail(ErrorCode.BadMessage, "Give one of room and with");
  }
  if (room !== void 0 && typeof room !== "string") {
    return fail(ErrorCode.BadMessage, "Field room must be a string");
  }
  if (other !== void 0 && (typeof other !== "string" || !isUid(other))) {
    return fail(ErrorCode.BadMessage, "Field with must be a uid");
  }
  if (typeof id !== "number" || !Number.isSafeInteger(id) || id < 1) {
    return fail(ErrorCode.BadMessage, "Field id must be a positive integer");
  }
  const epoch = parseEpoch(fields.epoch);
  if (epoch === void 0) return fail(ErrorCode.BadMessage, "Field epoch must be an epoch");
  const to = optionalString(fields, "to");
  if (to === null) return fail(ErrorCode.BadMessage, "Field to must be a string");
  const where = typeof room === "string" ? {
    room
  } : {
    with: other,
    ...to === void 0 ? {} : {
      to
    }
  };
  return ok({
    type: "read",
    ...where,
    id,
    epoch
  });
}
var PARSERS = {
  message: (fields) => parseChat(fields, "message"),
  private: (fields) => parseChat(fields, "private"),
  rename: (fields) => {
    const name = requiredString(fields, "name");
    return withCid(fields, typeof name === "string" ? ok({
      type: "rename",
      name
    }) : name);
  },
  heartbeat: (fields) => {
    const interval = fields.interval_ms;
    if (interval === void 0) return ok({
      type: "heartbeat"
    });
    if (typeof interval !== "number" || !Number.isSafeInteger(interval) || interval < 0) {
      return fail(ErrorCode.BadMessage, "Field interval_ms must be a non-negative integer");
    }
    return ok({
      type: "heartbeat",
      interval_ms: interval
    });
  },
  pong: () => ok({
    type: "pong"
  }),
  join: (fields) => withCid(fields, parseRecovery(fields, "join")),
  resume: (fields) => parseRecovery(fields, "resume"),
  leave: (fields) => {
    const room = requiredString(fields, "room");
    return typeof room === "string" ? ok({
      type: "leave",
      room
    }) : room;
  },
  conversation: (fields) => {
    const other = fields.with;
    if (typeof other !== "string" || !isUid(other)) {
      return fail(ErrorCode.BadMessage, "Field with must be a uid");
    }
    const since = fields.since;
    if (since === void 0) return ok({
      type: "conversation",
      with: other
    });
    if (typeof since !== "number" || !Number.isSafeInteger(since) || since < 0) {
      return fail(ErrorCode.BadMessage, "Field since must be a non-negative integer");
    }
    return ok({
      type: "conversation",
      with: other,
      since
    });
  },
  read: parseRead,
  conversations: () => ok({
    type: "conversations"
  }),
  typing: (fields) => {
    const room = optionalString(fields, "room");
    if (room === null) return fail(ErrorCode.BadMessage, "Field room must be a string");
    const to = optionalString(fields, "to");
    if (to === null) return fail(ErrorCode.BadMessage, "Field to must be a string");
    return ok({
      type: "typing",
      ...room === void 0 ? {} : {
        room
      },
      ...to === void 0 ? {} : {
        to
      }
    });
  },
  users: (fields) => {
    const room = optionalString(fields, "room");
    if (room === null) return fail(ErrorCode.BadMessage, "Field room must be a string");
    const offset = fields.offset;
    if (offset !== void 0 && !(Number.isSafeInteger(offset) && offset >= 0)) {
      return fail(ErrorCode.BadMessage, "Field offset must be a non-negative integer");
    }
    return ok({
      type: "users",
      ...room === void 0 ? {} : {
        room
      },
      ...offset === void 0 ? {} : {
        offset
      }
    });
  }
};
function parseObject(fields) {
  const type = fields.type;
  if (type === void 0 && fields.message !== void 0) return parseChat(fields, "message");
  if (typeof type !== "string") {
    return fail(ErrorCode.BadMessage, "Field type must be a string");
  }
  const parse = Object.hasOwn(PARSERS, type) ? PARSERS[type] : void 0;
  if (parse === void 0) {
    return fail(ErrorCode.UnknownType, `Unknown message type: ${type.slice(0, 64)}`);
  }
  return parse(fields);
}
function parseClientMessage(text) {
  if (text.length >= CHAT_FRAME_HEAD.length + 2 && text.startsWith(CHAT_FRAME_HEAD) && text.endsWith('"}')) {
    const body = text.slice(CHAT_FRAME_HEAD.length, -2);
    if (!NEEDS_ESCAPE.test(body)) {
      return plainMessage(body);
    }
  }
  if (text.trimStart()[0] !== "{") return plainMessage(text);
  let data;
  try {
    data = JSON.parse(text);
  } catch {
    return fail(ErrorCode.BadJson, "Frame is not valid JSON");
  }
  return parseObject(data);
}
function parseEpoch(value) {
  return typeof value === "string" && /^[\w-]{1,64}$/.test(value) ? value : void 0;
}

// chat/protocol.ts
var SYSTEM_SENDER = "System";
var DEFAULT_ROOM = "lobby";
var HEARTBEAT_MAX_SCALE = 10;
var TYPING_INTERVAL_MS = 2e3;
var TYPING_TTL_MS = 5e3;

// client/backoff.ts
var DEFAULT_BACKOFF = Object.freeze({
  minDelayMs: 1e3,
  maxDelayMs: 3e4
});
function reconnectDelay(at, options = {}) {
  const { minDelayMs, maxDelayMs } = {
    ...DEFAULT_BACKOFF,
    ...options
  };
  const ceiling = Math.min(maxDelayMs, minDelayMs * 2 ** Math.min(at.attempt, 30));
  return Math.round(minDelayMs + at.random * Math.max(0, ceiling - minDelayMs));
}

// client/close_labels.ts
var PING_TIMEOUT_REASON = "No response from ping frame.";
var LABELS = /* @__PURE__ */ new Map([
  // Deno's WebSocket reports a failed handshake or a lost connection with 0.
  [
    0,
    "Could not reach the server"
  ],
  [
    CloseCode.Normal,
    "Connection closed"
  ],
  [
    CloseCode.GoingAway,
    "Server shutting down"
  ],
  [
    1006,
    "Connection lost"
  ],
  [
    CloseCode.PolicyViolation,
    "Refused by the server"
  ],
  [
    CloseCode.MessageTooBig,
    "Message too big"
  ],
  [
    CloseCode.InternalError,
    "Server error"
  ],
  [
    CloseCode.HeartbeatTimeout,
    "Heartbeat timeout"
  ],
  [
    CloseCode.RoomClosed,
    "Room closed"
  ],
  [
    CloseCode.Kicked,
    "Kicked"
  ],
  [
    CloseCode.SlowConsumer,
    "Too slow to keep up; reconnecting"
  ],
  [
    CloseCode.UsernameInUse,
    "Username already in use"
  ]
]);
var FINAL = /* @__PURE__ */ new Set([
  CloseCode.PolicyViolation,
  CloseCode.RoomClosed,
  CloseCode.Kicked
]);
var PASSING = /* @__PURE__ */ new Set([
  CloseReason.ServerFull,
  CloseReason.TooManyConnections,
  CloseReason.RateLimitExceeded
]);
function describeClose(code, reason = "") {
  if (code === CloseCode.GoingAway && reason === PING_TIMEOUT_REASON) {
    return "Connection stopped answering";
  }
  if (reason !== "") return reason;
  return LABELS.get(code) ?? `Closed with code ${code}`;
}
function isFinalClose(close, welcomed) {
  if (FINAL.has(close.code)) return !PASSING.has(close.reason ?? "");
  return close.code === CloseCode.UsernameInUse && !welcomed;
}

// client/conversations.ts
var MAX_CONVERSATIONS = 200;
var SEEN_LIMIT = 500;
var Conversations = class {
  #byUid = /* @__PURE__ */ new Map();
  /** The other person of a private frame, seen from `me`; undefined without uids. */
  static other(frame, me) {
    return frame.uid === me ? frame.to_uid : frame.uid;
  }
  /** Records a frame of the conversation with `other`; false when it was seen already. */
  record(other, frame) {
    let talk = this.#byUid.get(other);
    if (talk === void 0) {
      talk = {
        last: 0,
        ids: /* @__PURE__ */ new Set()
      };
      if (this.#byUid.size >= MAX_CONVERSATIONS) {
        const oldest = this.#byUid.keys().next().value;
        if (oldest !== void 0) this.#byUid.delete(oldest);
      }
    }
    this.#byUid.delete(other);
    this.#byUid.set(other, talk);
    if (talk.ids.has(frame.id)) return false;
    talk.ids.add(frame.id);
    if (talk.ids.size > SEEN_LIMIT) {
      const oldest = talk.ids.values().next().value;
      if (oldest !== void 0) talk.ids.delete(oldest);
    }
    if (frame.id > talk.last) talk.last = frame.id;
    return true;
  }
  /**
   * The conversations to resume after a reconnect, the most recently active
   * `count`: each other person and the last id seen. (Each is a frame the
   * rate limit counts; the others are read when opened.)
   */
  resumes(count) {
    const recent = count > 0 ? [
      ...this.#byUid
    ].slice(-count) : [];
    return recent.map(([uid, talk]) => ({
      with: uid,
      since: talk.last
    }));
  }
  /** The last id seen with `other`; 0 when none. */
  last(other) {
    return this.#byUid.get(other)?.last ?? 0;
  }
};

// client/emitter.ts
var Emitter = class {
  #listeners = /* @__PURE__ */ new Map();
  /** Calls `listener` with every `type` event until the returned function is called. */
  on(type, listener) {
    let set = this.#listeners.get(type);
    if (set === void 0) {
      set = /* @__PURE__ */ new Set();
      this.#listeners.set(type, set);
    }
    const entry = listener;
    set.add(entry);
    return () => set.delete(entry);
  }
  /** Calls the listeners of `type`; one that throws is reported and the others still run. */
  emit(type, payload) {
    const set = this.#listeners.get(type);
    if (set === void 0) return;
    for (const listener of [
      ...set
    ]) {
      try {
        listener(payload);
      } catch (error) {
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }
};

// client/events.ts
var ChatError = class extends Error {
  /** The error frame's code, or `closed` when the connection ended first. */
  code;
  /** An error with the server's code and message. */
  constructor(code, message) {
    super(message);
    this.name = "ChatError";
    this.code = code;
  }
};

// client/pacer.ts
var Pacer = class {
  #perS = Infinity;
  #burst = Infinity;
  #tokens = Infinity;
  #at = 0;
  /**
   * Adopts the server's limit, keeping one frame of the burst in reserve:
   * a pong to the server's ping may have to go while messages are waiting.
   */
  configure(limit, now) {
    if (limit === void 0 || !(limit.perS > 0) || !(limit.burst > 0)) {
      this.#perS = this.#burst = this.#tokens = Infinity;
      return;
    }
    this.#perS = limit.perS;
    this.#burst = Math.max(1, limit.burst - 1);
    this.#tokens = Math.min(this.#tokens, this.#burst);
    this.#at = now;
  }
  /** Takes a token at `now`: 0 when the frame may go, else the milliseconds to wait. */
  take(now) {
    if (this.#perS === Infinity) return 0;
    this.#refill(now);
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return 0;
    }
    return Math.ceil((1 - this.#tokens) / this.#perS * 1e3);
  }
  /**
   * Counts a frame that cannot wait (a heartbeat, a pong, a join): it goes
   * at once, and the messages behind it wait the longer.
   */
  spend(now) {
    if (this.#perS === Infinity) return;
    this.#refill(now);
    this.#tokens = Math.max(-this.#burst, this.#tokens - 1);
  }
  #refill(now) {
    this.#tokens = Math.min(this.#burst, this.#tokens + (now - this.#at) / 1e3 * this.#perS);
    this.#at = now;
  }
  /** Empties the bucket, after the server said `rate_limited` all the same. */
  drain(now) {
    if (this.#perS === Infinity) return;
    this.#tokens = 0;
    this.#at = now;
  }
};

// client/read_state.ts
var READ_INTERVAL_MS = 1e3;
function forward(next, known) {
  return known === void 0 || known.epoch !== next.epoch || next.id > known.id;
}
function keyOf(target) {
  return "room" in target ? `#${target.room}` : `@${target.with}`;
}
var ReadState = class {
  #timers;
  #write;
  #own = /* @__PURE__ */ new Map();
  #seen = /* @__PURE__ */ new Map();
  /** Frames not sent yet (paced, or written while disconnected), by target. */
  #due = /* @__PURE__ */ new Map();
  #timer = /* @__PURE__ */ new Map();
  #sentAt = /* @__PURE__ */ new Map();
  /** Read state that writes its frames with `write` (false when not connected). */
  constructor(options) {
    this.#timers = options.timers;
    this.#write = options.write;
  }
  /** The own position in a room or conversation; undefined when none is known. */
  position(target) {
    return this.#own.get(keyOf(target));
  }
  /** How far the person of `uid` has read their conversation with this client. */
  seenBy(uid) {
    return this.#seen.get(uid);
  }
  /** Takes a `read` or `seen` frame; true when it moved a position forward. */
  receive(frame) {
    const position = {
      id: frame.id,
      epoch: frame.epoch
    };
    if (frame.type === "seen") return this.#set(this.#seen, frame.with, position);
    const target = frame.room !== void 0 ? {
      room: frame.room
    } : {
      with: frame.with ?? ""
    };
    return this.#set(this.#own, keyOf(target), position);
  }
  /**
   * Marks a room or conversation read up to `position`: known at once, sent
   * now or, within {@linkcode READ_INTERVAL_MS} of the last, when it ends.
   * `to` (the other person's name) lets the server pass a live receipt.
   * False when it does not move the position forward.
   */
  mark(target, position) {
    const key = keyOf(target);
    if (!this.#set(this.#own, key, position)) return false;
    const where = "room" in target ? {
      room: target.room
    } : {
      with: target.with
    };
    const to = target.to === void 0 ? {} : {
      to: target.to
    };
    this.#due.set(key, {
      type: "read",
      ...where,
      ...to,
      ...position
    });
    if (this.#timer.has(key)) return true;
    const wait = (this.#sentAt.get(key) ?? -Infinity) + READ_INTERVAL_MS - this.#timers.now();
    if (wait <= 0) this.#send(key);
    else this.#timer.set(key, this.#timers.setTimeout(() => this.#send(key), wait));
    return true;
  }
  /** Sends the frames that wait for a connection (after a welcome). */
  flush() {
    for (const key of [
      ...this.#due.keys()
    ]) if (!this.#timer.has(key)) this.#send(key);
  }
  /** Cancels the paced frames' timers. */
  dispose() {
    for (const timer of this.#timer.values()) this.#timers.clearTimeout(timer);
    this.#timer.clear();
  }
  #send(key) {
    this.#timer.delete(key);
    const frame = this.#due.get(key);
    if (frame === void 0 || !this.#write(frame)) return;
    this.#due.delete(key);
    this.#sentAt.set(key, this.#timers.now());
  }
  #set(map, key, position) {
    if (!forward(position, map.get(key))) return false;
    map.set(key, position);
    return true;
  }
};

// client/room_log.ts
var SEEN_LIMIT2 = 2e3;
var RoomLog = class {
  /** The room's name as the server spells it. */
  room;
  /** The highest id seen; 0 before any. */
  last = 0;
  /** The online users, as the server last told: the first page of a big room's. */
  users = [];
  /** How many users the room has; more than `users` holds in a big room. */
  count = 0;
  /** Whether the current socket is in the room (its `welcome` or `joined` came). */
  live = false;
  /** True while a replay brings what was missed since `last` (a resume, not a first join). */
  recovering = false;
  #ids = /* @__PURE__ */ new Set();
  /** An empty log of `room`. */
  constructor(room) {
    this.room = room;
  }
  /** Records a frame's id; false when it was seen already. A live-only notice has none. */
  firstSight(frame) {
    if (frame.id === void 0) return true;
    if (this.#ids.has(frame.id)) return false;
    this.#ids.add(frame.id);
    if (this.#ids.size > SEEN_LIMIT2) {
      const oldest = this.#ids.values().next().value;
      if (oldest !== void 0) this.#ids.delete(oldest);
    }
    if (frame.id > this.last) this.last = frame.id;
    return true;
  }
  /** Forgets the ids: the server gave them out again (a new epoch, or history lost). */
  forget() {
    this.#ids.clear();
    this.last = 0;
  }
  /** Replaces the online users (or adds a later page, from `offset`), and their count. */
  setUsers(users, page = {}) {
    const first = page.offset === void 0 || page.offset === 0;
    this.users = [
      ...new Set(first ? users : [
        ...this.users,
        ...users
      ])
    ];
    this.count = page.count ?? this.users.length;
  }
  /**
   * Updates the online users from a `system` notice; true when they changed.
   * Names are compared by their key, as the server compares them.
   */
  applyPresence(frame) {
    if (frame.type !== "system" || frame.user === void 0) return false;
    const user = frame.user;
    const same = (a, b) => nameKey(a) === nameKey(b);
    if (frame.event === "join") {
      if (this.users.some((u) => same(u, user))) return false;
      this.users = [
        ...this.users,
        user
      ];
      this.count++;
    } else if (frame.event === "leave" || frame.event === "kick") {
      const before = this.users.length;
      this.users = this.users.filter((u) => !same(u, user));
      if (this.users.length < before) this.count = Math.max(this.users.length, this.count - 1);
    } else if (frame.event === "rename" && frame.old_name !== void 0) {
      const old = frame.old_name;
      this.users = this.users.map((u) => same(u, old) ? user : u);
    } else {
      return false;
    }
    return true;
  }
};

// client/send_queue.ts
var SendQueue = class {
  #limit;
  #items = [];
  #counter = 0;
  #prefix;
  /** A queue holding at most `limit` messages; `random` makes its ids unique across tabs. */
  constructor(limit, random) {
    this.#limit = limit;
    this.#prefix = Math.floor(random() * 36 ** 6).toString(36).padStart(6, "0");
  }
  /** The number of messages waiting for their fate. */
  get size() {
    return this.#items.length;
  }
  /** Queues a message; its fate settles the returned promise. */
  add(frame) {
    if (this.#items.length >= this.#limit) {
      const reason = `Too many messages waiting to be sent: ${this.#items.length}`;
      return sending(Promise.resolve({
        status: "refused",
        code: "queue_full",
        reason
      }), "");
    }
    const cid = `${this.#prefix}-${++this.#counter}`;
    const fate = new Promise((settle) => {
      this.#items.push({
        frame: {
          ...frame,
          cid
        },
        sent: false,
        uncertain: false,
        retries: 0,
        settle
      });
    });
    return sending(fate, cid);
  }
  /** The oldest message ready to go out: not sent, not held by an unfinished replay. */
  next(ready) {
    return this.#items.find((item) => !item.sent && ready(item));
  }
  /** Settles the message with client id `cid`; false when none waits. */
  settle(cid, fate) {
    const index = this.#items.findIndex((item2) => item2.frame.cid === cid);
    if (index < 0) return false;
    const [item] = this.#items.splice(index, 1);
    item?.settle(fate);
    return true;
  }
  /** Puts a message refused for its rate back in line; its retries so far, or -1 when none has `cid`. */
  retry(cid) {
    const item = this.#items.find((candidate) => candidate.frame.cid === cid);
    if (item === void 0) return -1;
    item.sent = false;
    return ++item.retries;
  }
  /** After a dropped socket: what was sent is uncertain and goes out again once cleared. */
  dropped() {
    for (const item of this.#items) {
      if (item.sent) item.uncertain = true;
      item.sent = false;
    }
  }
  /** Marks the uncertain messages matching `which` as plain unsent ones. */
  clear(which) {
    for (const item of this.#items) if (item.uncertain && which(item)) item.uncertain = false;
  }
  /** Settles every message as refused with `code` and empties the queue. */
  refuseAll(code, reason) {
    const items = this.#items;
    this.#items = [];
    for (const item of items) item.settle({
      status: "refused",
      code,
      reason
    });
  }
};
function sending(fate, cid) {
  return Object.assign(fate, {
    cid
  });
}

// client/timers.ts
var TIMERS = Object.freeze({
  now: () => Date.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle),
  random: () => Math.random()
});

// client/chat_client.ts
var OPEN = 1;
var CLOSED = 3;
var RESUMED_CONVERSATIONS = 5;
var RETRY_MAX_MS = 5e3;
function frameBytes(frame) {
  return new TextEncoder().encode(JSON.stringify({
    cid: "x".repeat(16),
    ...frame
  })).length;
}
function roomKey(room) {
  return roomName(room) ?? room;
}
var ChatClient = class {
  #options;
  #timers;
  #events = new Emitter();
  #queue;
  #pacer = new Pacer();
  #rooms = /* @__PURE__ */ new Map();
  #joins = /* @__PURE__ */ new Map();
  #rename;
  #socket = null;
  #state = "idle";
  #username;
  #firstRoom;
  #epoch = "";
  #uid = "";
  /** The heartbeat in force: the welcome's, or the last ack's after `setHeartbeatInterval`. */
  #heartbeat = null;
  /** The ping interval asked for with `setHeartbeatInterval`; undefined for the server's own. */
  #beatInterval;
  #welcomed = false;
  /** Whether any socket got a welcome since `connect()`. */
  #everWelcomed = false;
  #attempt = 0;
  #lastFrameAt = 0;
  #maxMessageBytes = Infinity;
  #timer;
  #pumpTimer;
  #heartbeatTimer;
  #seq = 0;
  /** The private conversations seen, by the other person's uid. */
  #talks = new Conversations();
  /** Conversations asked for again after a reconnect, whose frames are `missed`. */
  #resuming = /* @__PURE__ */ new Set();
  /** When a `typing` frame last went out, per room or `@person`. */
  #typedAt = /* @__PURE__ */ new Map();
  /** Own read positions, the others' receipts, and the `read` frames waiting. */
  #reads;
  /** A client that connects when `connect()` is called. */
  constructor(options) {
    new URL(options.url);
    this.#options = options;
    this.#timers = options.timers ?? TIMERS;
    this.#queue = new SendQueue(options.maxQueued ?? 100, this.#timers.random);
    this.#username = options.username ?? "";
    this.#firstRoom = roomKey(options.room ?? DEFAULT_ROOM);
    this.#reads = new ReadState({
      timers: this.#timers,
      write: (f) => this.#write(f)
    });
  }
  /** The username: the one asked for, then the one the server gave. */
  get username() {
    return this.#username;
  }
  /**
   * This user's public identity, from the last welcome ("" before one): own
   * messages carry it as `uid`, across renames, reloads and tabs with one key.
   */
  get uid() {
    return this.#uid;
  }
  /** The connection state. */
  get state() {
    return this.#state;
  }
  /** The rooms the client is in, the first one first. */
  get rooms() {
    return [
      ...this.#rooms.keys()
    ];
  }
  /** Messages waiting for their fate. */
  get queued() {
    return this.#queue.size;
  }
  /** How many users `room` has (the first room when omitted), as last told. */
  userCount(room) {
    return this.#rooms.get(roomKey(room ?? this.#firstRoom))?.count ?? 0;
  }
  /** The online users of `room` (the first room when omitted), as last told: a big room's first page. */
  users(room) {
    return [
      ...this.#rooms.get(roomKey(room ?? this.#firstRoom))?.users ?? []
    ];
  }
  /** Calls `listener` with every `type` event; returns the function that stops it. */
  on(type, listener) {
    return this.#events.on(type, listener);
  }
  /** Opens the connection; it reconnects by itself until `close()`. */
  connect() {
    if (this.#state !== "idle" && this.#state !== "closed") return;
    this.#attempt = 0;
    this.#everWelcomed = false;
    this.#open();
  }
  /** Reconnects at once when a reconnect is waiting (a tab shown again, the network back). */
  reconnectNow() {
    if (this.#state !== "reconnecting") return;
    this.#timers.clearTimeout(this.#timer);
    this.#open();
  }
  /**
   * Closes the connection for good; queued messages are refused with
   * `closed`. The promise resolves once the socket has closed.
   */
  close() {
    const socket = this.#socket;
    this.#detach();
    this.#timers.clearTimeout(this.#timer);
    this.#end(CloseCode.Normal, "");
    if (socket === null || socket.readyState === CLOSED) return Promise.resolve();
    const closed = new Promise((resolve) => socket.addEventListener("close", () => resolve()));
    socket.close(CloseCode.Normal, "Bye");
    return closed;
  }
  /** Closes the client, for `await using`. */
  [Symbol.asyncDispose]() {
    return this.close();
  }
  /**
   * Sends a chat message to a room (the first room when omitted), or a
   * private message with `to`. The promise settles with its fate: stored
   * (with the frame as stored) or refused (with the server's code and reason);
   * its `cid` is the client id the stored frame will carry.
   */
  send(text, options = {}) {
    if (this.#state === "closed") {
      return sending(Promise.resolve({
        status: "refused",
        code: "closed",
        reason: "Client closed"
      }), "");
    }
    const frame = this.#frame(text, options);
    const tooBig = this.#tooBig(frame);
    if (tooBig !== void 0) return sending(Promise.resolve(tooBig), "");
    const fate = this.#queue.add(frame);
    this.#pump();
    return fate;
  }
  /**
   * The UTF-8 bytes `send(text, options)` would send, client id included:
   * more than the server's `limits.max_message_bytes` is refused.
   */
  messageBytes(text, options = {}) {
    return frameBytes(this.#frame(text, options));
  }
  #frame(text, options) {
    const room = roomKey(options.room ?? this.#firstRoom);
    return options.to === void 0 ? {
      type: "message",
      message: text,
      room
    } : {
      type: "private",
      to: options.to,
      message: text,
      room
    };
  }
  /** The refusal of a frame over the server's limit (known from the first welcome). */
  #tooBig(frame) {
    const bytes = frameBytes(frame);
    if (bytes <= this.#maxMessageBytes) return void 0;
    return {
      status: "refused",
      code: "message_too_big",
      reason: `Message too big: ${bytes} bytes`
    };
  }
  /** Joins a room on the same socket; resolves with the `joined` frame. */
  join(room) {
    return new Promise((resolve, reject) => {
      const cid = this.#cid();
      if (!this.#write({
        type: "join",
        room,
        cid
      })) {
        reject(new ChatError("closed", "Not connected"));
        return;
      }
      this.#joins.set(cid, {
        resolve,
        reject,
        room: nameKey(room)
      });
    });
  }
  /** Leaves a room; the `left` event follows. False when not connected. */
  leave(room) {
    return this.#write({
      type: "leave",
      room
    });
  }
  /** Renames this user; resolves with the new name as the server spells it. */
  rename(name) {
    return new Promise((resolve, reject) => {
      const cid = this.#cid();
      if (this.#rename !== void 0) {
        reject(new ChatError("rename_pending", `A rename is under way: ${name}`));
        return;
      }
      if (nameKey(name) === nameKey(this.#username) && this.#welcomed) {
        resolve(this.#username);
        return;
      }
      if (!this.#write({
        type: "rename",
        name,
        cid
      })) {
        reject(new ChatError("closed", "Not connected"));
        return;
      }
      if (this.#rooms.size === 0) return resolve(name);
      this.#rename = {
        resolve,
        reject,
        cid
      };
    });
  }
  /**
   * Says this user is typing, in a room (the first when omitted) or to one
   * user with `to`; call it on every key press: it sends at most one frame
   * per TYPING_INTERVAL_MS per room or person, and nothing while not connected.
   */
  typing(options = {}) {
    const { to } = options;
    const room = roomKey(options.room ?? this.#firstRoom);
    const target = to === void 0 ? {
      room
    } : {
      to
    };
    const key = to === void 0 ? room : `@${nameKey(to)}`;
    const now = this.#timers.now();
    if (now - (this.#typedAt.get(key) ?? -Infinity) < TYPING_INTERVAL_MS) return;
    if (this.#write({
      type: "typing",
      ...target
    })) this.#typedAt.set(key, now);
  }
  /**
   * Asks for the conversation with the person of public uid `other` (a
   * private frame's `uid` or `to_uid`): its latest messages come as
   * `private` events with `replayed`, each once. False when not connected.
   */
  conversation(other) {
    return this.#write({
      type: "conversation",
      with: other
    });
  }
  /**
   * Marks a room (the first when neither is given) or the conversation with
   * the person of uid `with` read up to the newest message received; `to`,
   * their name, lets the server show them a receipt at once. Stored by the
   * server for this identity (a token or a key) and passed to its other
   * tabs; sent at most once per READ_INTERVAL_MS per room or conversation,
   * and after a reconnect when not connected. False when nothing new was read.
   */
  markRead(target = {}) {
    const other = target.with;
    const last = other === void 0 ? this.#rooms.get(roomKey(target.room ?? this.#firstRoom))?.last ?? 0 : this.#talks.last(other);
    if (last === 0 || this.#epoch === "") return false;
    const to = target.to === void 0 ? {} : {
      to: target.to
    };
    const where = other === void 0 ? {
      room: roomKey(target.room ?? this.#firstRoom)
    } : {
      with: other,
      ...to
    };
    return this.#reads.mark(where, {
      id: last,
      epoch: this.#epoch
    });
  }
  /**
   * How many messages of a room (the first when neither is given) or of the
   * conversation with uid `with` came after this identity's read position,
   * counted by ids; undefined while no position is known.
   */
  unread(target = {}) {
    const other = target.with;
    const where = other === void 0 ? {
      room: roomKey(target.room ?? this.#firstRoom)
    } : {
      with: other
    };
    const position = this.#reads.position(where);
    if (position === void 0 || position.epoch !== this.#epoch) return void 0;
    const last = other === void 0 ? this.#rooms.get(where.room ?? "")?.last ?? 0 : this.#talks.last(other);
    return Math.max(0, last - position.id);
  }
  /** How far the person of uid `other` has read their conversation with this client. */
  seenBy(other) {
    return this.#reads.seenBy(other);
  }
  /**
   * Asks for this identity's conversations, newest first, with their newest
   * ids and both read positions: the `conversations` event answers. False
   * when not connected.
   */
  listConversations() {
    return this.#write({
      type: "conversations"
    });
  }
  /**
   * Asks the server for a slower heartbeat (a hidden tab, a phone saving its
   * battery), in milliseconds between pings; the server takes it within 1 to
   * 10 times its own interval and scales its timeout alike. Without an
   * argument, back to the server's own. Kept across reconnects.
   */
  setHeartbeatInterval(intervalMs) {
    this.#beatInterval = intervalMs;
    if (this.#heartbeat === null) return;
    this.#write({
      type: "heartbeat",
      interval_ms: intervalMs ?? 0
    });
  }
  /**
   * Asks the server for the online users of a room; the `users` event
   * answers. A big room's list comes in pages: ask again from `offset` (the
   * names held so far) for the next. False when not connected.
   */
  refreshUsers(room, offset = 0) {
    return this.#write({
      type: "users",
      room: room ?? this.#firstRoom,
      ...offset ? {
        offset
      } : {}
    });
  }
  // -------------------------------------------------------------------------
  // The socket
  #open() {
    this.#setState({
      state: "connecting"
    });
    this.#welcomed = false;
    const { token = "", key = "" } = this.#options;
    const secrets = [
      ...token === "" ? [] : [
        `bearer.${token}`
      ],
      ...key === "" ? [] : [
        `key.${key}`
      ]
    ];
    const protocols = secrets.length === 0 ? [] : [
      "chat",
      ...secrets
    ];
    const open = this.#options.webSocket ?? ((url, list) => new WebSocket(url, list));
    let socket;
    try {
      socket = open(this.#url(), protocols);
    } catch (error) {
      this.#closed(1006, error instanceof Error ? error.message : String(error));
      return;
    }
    this.#socket = socket;
    this.#lastFrameAt = this.#timers.now();
    socket.addEventListener("message", (event) => {
      if (this.#socket !== socket || typeof event.data !== "string") return;
      this.#lastFrameAt = this.#timers.now();
      for (const line of event.data.split("\n")) {
        if (this.#socket !== socket) return;
        this.#onText(line);
      }
    });
    socket.addEventListener("close", (event) => {
      if (this.#socket === socket) this.#closed(event.code, event.reason);
    });
  }
  #url() {
    const url = new URL(this.#options.url);
    url.protocol = url.protocol === "https:" || url.protocol === "wss:" ? "wss:" : "ws:";
    const name = this.#username;
    url.pathname = name === "" ? "/ws/chat" : `/ws/chat/${encodeURIComponent(name)}`;
    const params = new URLSearchParams({
      room: this.#firstRoom,
      batch: "1"
    });
    if (this.#options.heartbeat !== false) params.set("heartbeat", "1");
    const last = this.#rooms.get(this.#firstRoom)?.last ?? 0;
    if (last > 0) {
      params.set("since", String(last));
      if (this.#epoch !== "") params.set("epoch", this.#epoch);
    }
    url.search = params.toString();
    return url.href;
  }
  /** Sends a frame now; the server's rate limit counts it, so the pacer does too. */
  #write(frame, paced = false) {
    const socket = this.#socket;
    if (socket === null || socket.readyState !== OPEN || !this.#welcomed) return false;
    if (!paced) this.#pacer.spend(this.#timers.now());
    socket.send(JSON.stringify(frame));
    return true;
  }
  #detach() {
    this.#socket = null;
    for (const log of this.#rooms.values()) log.live = false;
    this.#welcomed = false;
    this.#timers.clearTimeout(this.#timer);
    this.#timers.clearTimeout(this.#pumpTimer);
    this.#timers.clearTimeout(this.#heartbeatTimer);
  }
  #closed(code, reason) {
    this.#detach();
    this.#queue.dropped();
    this.#failPending(reason || "Connection closed");
    if (this.#state === "closed") return;
    if (this.#options.reconnect === false || isFinalClose({
      code,
      reason
    }, this.#everWelcomed)) {
      this.#end(code, reason);
      return;
    }
    const delayMs = reconnectDelay({
      attempt: this.#attempt++,
      random: this.#timers.random()
    }, this.#options.reconnect);
    this.#timer = this.#timers.setTimeout(() => this.#open(), delayMs);
    this.#setState({
      state: "reconnecting",
      code,
      reason,
      delayMs
    });
  }
  #end(code, reason) {
    if (this.#state === "closed") return;
    this.#reads.dispose();
    this.#queue.refuseAll("closed", reason || "Connection closed");
    this.#setState({
      state: "closed",
      code,
      reason
    });
  }
  #failPending(reason) {
    const pending = [
      ...this.#joins.values(),
      ...this.#rename ? [
        this.#rename
      ] : []
    ];
    this.#joins.clear();
    this.#rename = void 0;
    for (const { reject } of pending) reject(new ChatError("closed", reason));
  }
  #setState(event) {
    this.#state = event.state;
    this.#events.emit("state", event);
  }
  #cid() {
    return `r${++this.#seq}`;
  }
  // -------------------------------------------------------------------------
  // Frames
  #onText(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    if (typeof frame !== "object" || frame === null || typeof frame.type !== "string") return;
    this.#onFrame(frame);
  }
  #onFrame(frame) {
    switch (frame.type) {
      case "welcome":
        return this.#onWelcome(frame);
      case "joined":
        return this.#onJoined(frame);
      case "history":
        return this.#onHistory(frame);
      case "left":
        return this.#onLeft(frame);
      case "message":
      case "system":
        return this.#onRoomFrame(frame, false);
      case "private":
        return this.#onPrivate(frame);
      case "users":
        return this.#setUsers(frame);
      case "ping":
        this.#write({
          type: "pong"
        });
        return;
      case "error":
        return this.#onError(frame);
      case "heartbeat_ack":
        if (frame.heartbeat !== void 0) this.#heartbeat = frame.heartbeat;
        return;
      case "conversation":
        return this.#onConversation(frame);
      case "typing":
        if (nameKey(frame.user) !== nameKey(this.#username)) this.#events.emit("typing", frame);
        return;
      case "read":
      case "seen":
        if (this.#reads.receive(frame)) this.#events.emit(frame.type, frame);
        return;
      case "conversations":
        for (const c of frame.conversations) {
          if (c.read_id > 0) {
            this.#reads.receive({
              type: "read",
              with: c.with,
              id: c.read_id,
              epoch: c.epoch
            });
          }
          if (c.seen_id > 0) {
            this.#reads.receive({
              type: "seen",
              with: c.with,
              id: c.seen_id,
              epoch: c.epoch
            });
          }
        }
        this.#events.emit("conversations", frame.conversations);
        return;
    }
  }
  #onWelcome(frame) {
    this.#welcomed = this.#everWelcomed = true;
    this.#attempt = 0;
    this.#username = frame.username;
    this.#uid = frame.uid ?? "";
    this.#firstRoom = frame.room;
    const limit = frame.limits;
    this.#maxMessageBytes = limit.max_message_bytes;
    const rate = limit.rate_per_s !== void 0 && limit.burst !== void 0 ? {
      perS: limit.rate_per_s,
      burst: limit.burst
    } : void 0;
    this.#pacer.configure(rate, this.#timers.now());
    const rejoin = [
      ...this.#rooms.values()
    ].filter((log) => log.room !== frame.room);
    const epoch = this.#epoch;
    this.#enter(frame);
    this.#setState({
      state: "open"
    });
    this.#events.emit("welcome", frame);
    this.#afterEntry(frame);
    for (const log of rejoin) {
      const since = log.last > 0 ? {
        since: log.last,
        ...epoch === "" ? {} : {
          epoch
        }
      } : {};
      this.#write({
        type: "join",
        room: log.room,
        ...since
      });
    }
    for (const resume of this.#talks.resumes(RESUMED_CONVERSATIONS)) {
      this.#resuming.add(resume.with);
      this.#write({
        type: "conversation",
        ...resume
      });
    }
    this.#queue.clear((item) => item.frame.type === "private");
    this.#reads.flush();
    this.#startHeartbeat(frame);
    this.#pump();
  }
  #onJoined(frame) {
    this.#enter(frame);
    const key = nameKey(frame.room);
    const entry = [
      ...this.#joins
    ].find(([, pending2]) => pending2.room === key);
    if (entry !== void 0) this.#joins.delete(entry[0]);
    const pending = entry?.[1];
    this.#events.emit("joined", frame);
    pending?.resolve(frame);
    this.#afterEntry(frame);
  }
  /** Adopts a welcome's or joined's epoch, users and first page of history. */
  #enter(frame) {
    let log = this.#rooms.get(frame.room);
    if (log === void 0) {
      log = new RoomLog(frame.room);
      this.#rooms.set(frame.room, log);
    }
    this.#epoch = frame.epoch;
    log.recovering = log.last > 0 && frame.recovered;
    if (log.last > 0 && !frame.recovered) {
      log.forget();
      this.#events.emit("gap", {
        room: frame.room
      });
    }
    log.setUsers(frame.users, {
      count: frame.user_count
    });
    log.live = true;
    this.#emitUsers(log);
  }
  #afterEntry(frame) {
    for (const stored of frame.history) this.#onRoomFrame(stored, true);
    if (!frame.more) this.#replayDone(frame.room);
  }
  #onHistory(frame) {
    if (!this.#rooms.has(frame.room)) return;
    for (const stored of frame.history) this.#onRoomFrame(stored, true);
    if (!frame.more) this.#replayDone(frame.room);
  }
  /** A room's replay is over: messages in doubt that it did not show stored go out again. */
  #replayDone(room) {
    const log = this.#rooms.get(room);
    if (log !== void 0) log.recovering = false;
    this.#queue.clear((item) => item.frame.type === "message" && item.frame.room === room);
    this.#pump();
  }
  #onRoomFrame(frame, replayed) {
    const log = this.#rooms.get(frame.room);
    if (log === void 0 || !log.firstSight(frame)) return;
    const missed = replayed && log.recovering;
    if (frame.type === "message") {
      this.#settleOwn(frame);
      this.#events.emit("message", {
        frame,
        replayed,
        missed
      });
      return;
    }
    this.#events.emit("system", {
      frame,
      replayed,
      missed
    });
    if (replayed || !log.applyPresence(frame)) return;
    this.#emitUsers(log);
    if (frame.event === "rename" && frame.user !== void 0 && nameKey(frame.old_name ?? "") === nameKey(this.#username)) {
      this.#renamed(frame.user);
    }
  }
  #onLeft(frame) {
    this.#rooms.delete(frame.room);
    if (frame.room === this.#firstRoom) this.#firstRoom = this.rooms[0] ?? this.#firstRoom;
    this.#events.emit("left", frame);
  }
  #onPrivate(frame) {
    this.#settleOwn(frame);
    const other = Conversations.other(frame, this.#uid);
    if (other !== void 0 && !this.#talks.record(other, frame)) return;
    this.#events.emit("private", {
      frame,
      replayed: false,
      missed: false
    });
  }
  /** A conversation read again: what was not shown yet, and the next page when there is one. */
  #onConversation(frame) {
    const missed = this.#resuming.delete(frame.with);
    for (const stored of frame.history) {
      if (!this.#talks.record(frame.with, stored)) continue;
      this.#settleOwn(stored);
      this.#events.emit("private", {
        frame: stored,
        replayed: true,
        missed
      });
    }
    if (frame.more && frame.history.length > 0) {
      if (missed) this.#resuming.add(frame.with);
      this.#write({
        type: "conversation",
        with: frame.with,
        since: this.#talks.last(frame.with)
      });
    }
  }
  #settleOwn(frame) {
    const { cid, uid } = frame;
    const own = uid !== void 0 ? uid === this.#uid : frame.username === this.#username;
    if (cid !== void 0 && own) {
      this.#queue.settle(cid, {
        status: "stored",
        frame
      });
    }
  }
  #renamed(name) {
    const from = this.#username;
    this.#username = name;
    const pending = this.#rename;
    this.#rename = void 0;
    this.#events.emit("renamed", {
      from,
      to: name
    });
    pending?.resolve(name);
  }
  #emitUsers(log) {
    this.#events.emit("users", {
      room: log.room,
      users: [
        ...log.users
      ],
      count: log.count
    });
  }
  #setUsers(frame) {
    const { room, users } = frame;
    const log = this.#rooms.get(room);
    if (log === void 0) return;
    log.setUsers(users, {
      count: frame.connected_count,
      offset: frame.offset
    });
    this.#emitUsers(log);
  }
  #onError(frame) {
    const cid = frame.cid;
    const retries = cid === void 0 || frame.code !== "rate_limited" ? -1 : this.#queue.retry(cid);
    if (retries > 0) {
      this.#pacer.drain(this.#timers.now());
      this.#pump(Math.min(RETRY_MAX_MS, 1e3 * retries));
      return;
    }
    if (cid !== void 0) {
      if (this.#queue.settle(cid, {
        status: "refused",
        code: frame.code,
        reason: frame.message
      })) {
        return;
      }
      const join = this.#joins.get(cid);
      if (join !== void 0) {
        this.#joins.delete(cid);
        return join.reject(new ChatError(frame.code, frame.message));
      }
      if (this.#rename?.cid === cid) {
        const { reject } = this.#rename;
        this.#rename = void 0;
        return reject(new ChatError(frame.code, frame.message));
      }
    }
    this.#events.emit("error", frame);
  }
  // -------------------------------------------------------------------------
  // Sending and the heartbeat
  /** Sends what the queue holds, as fast as the server's limit allows. */
  #pump(delayMs = 0) {
    this.#timers.clearTimeout(this.#pumpTimer);
    if (delayMs > 0) {
      this.#pumpTimer = this.#timers.setTimeout(() => this.#pump(), delayMs);
      return;
    }
    if (!this.#welcomed) return;
    const ready = (item) => !item.uncertain && (item.frame.type === "private" || this.#rooms.get(item.frame.room ?? "")?.live !== false);
    for (let item = this.#queue.next(ready); item !== void 0; item = this.#queue.next(ready)) {
      const tooBig = this.#tooBig(item.frame);
      if (tooBig !== void 0) {
        this.#queue.settle(item.frame.cid, tooBig);
        continue;
      }
      const wait = this.#pacer.take(this.#timers.now());
      if (wait > 0) return this.#pump(wait);
      if (!this.#write(item.frame, true)) return;
      item.sent = true;
    }
  }
  #startHeartbeat(frame) {
    this.#heartbeat = frame.heartbeat;
    if (frame.heartbeat === null) return;
    if (this.#beatInterval !== void 0) {
      this.#write({
        type: "heartbeat",
        interval_ms: this.#beatInterval
      });
    }
    const beat = () => {
      const heartbeat = this.#heartbeat;
      if (heartbeat === null) return;
      if (this.#timers.now() - this.#lastFrameAt > heartbeat.timeout_ms) {
        const socket = this.#socket;
        this.#closed(CloseCode.HeartbeatTimeout, "No answer from the server");
        socket?.close(CloseCode.HeartbeatTimeout, "Heartbeat timeout");
        return;
      }
      this.#write({
        type: "heartbeat"
      });
      this.#heartbeatTimer = this.#timers.setTimeout(beat, heartbeat.interval_ms);
    };
    this.#heartbeatTimer = this.#timers.setTimeout(beat, frame.heartbeat.interval_ms);
  }
};

// client/keys.ts
function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

// client/mentions.ts
var MENTION = /(?<![\p{L}\p{M}\p{N}_.-])@([\p{L}\p{M}\p{N}_.-]+(?: [\p{L}\p{M}\p{N}_.-]+)?)/gu;
function mentions(text, name) {
  if (name === "") return false;
  const key = nameKey(name);
  for (const match of text.matchAll(MENTION)) {
    const words = match[1];
    if (nameKey(words.split(" ")[0]) === key || nameKey(words) === key) return true;
  }
  return false;
}
export {
  CONVERSATIONS_LISTED,
  ChatClient,
  ChatError,
  CloseCode,
  CloseReason,
  DEFAULT_BACKOFF,
  DEFAULT_ROOM,
  ErrorCode,
  HEARTBEAT_MAX_SCALE,
  PING_TIMEOUT_REASON,
  READ_INTERVAL_MS,
  SYSTEM_SENDER,
  TIMERS,
  TYPING_INTERVAL_MS,
  TYPING_TTL_MS,
  describeClose,
  isFinalClose,
  isReservedName,
  isUid,
  mentions,
  nameKey,
  newKey,
  normalizeName,
  parseClientMessage,
  parseEpoch,
  reconnectDelay,
  roomName
};
