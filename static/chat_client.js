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
var CONVERSATIONS_INTERVAL_MS = 2e3;

// chat/names.ts
var MAX_NAME_LENGTH = 32;
var NAME_PATTERN = /^[\p{L}\p{M}\p{N} _.\-]+$/u;
var INVISIBLE = /[\p{Default_Ignorable_Code_Point}\u115F\u1160\u3164\uFFA0]/u;
var LETTER_OR_DIGIT = /[\p{L}\p{N}]/u;
var ANY_SCRIPT = /[\p{Script=Common}\p{Script=Inherited}]/u;
var ASCII = /^[\0-\x7f]*$/;
var ASCII_LETTER = /[A-Za-z]/;
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
  if (ASCII.test(name)) return new Set(ASCII_LETTER.test(name) ? [
    "Latin"
  ] : []);
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
    return withCid(fields, ok({
      type: "users",
      ...room === void 0 ? {} : {
        room
      },
      ...offset === void 0 ? {} : {
        offset
      }
    }));
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
  const ceiling = Math.min(maxDelayMs, minDelayMs * 2 ** Math.min(at.attempt + 1, 30));
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

// client/link.ts
var OPEN = 1;
var CLOSED = 3;
function linkUrl(options) {
  const url = new URL(options.url);
  url.protocol = url.protocol === "https:" || url.protocol === "wss:" ? "wss:" : "ws:";
  const name = options.username;
  url.pathname = name === "" ? "/ws/chat" : `/ws/chat/${encodeURIComponent(name)}`;
  const params = new URLSearchParams({
    room: options.room,
    batch: "1"
  });
  if (options.heartbeat) params.set("heartbeat", "1");
  if (options.since > 0) {
    params.set("since", String(options.since));
    if (options.epoch !== "") params.set("epoch", options.epoch);
  }
  url.search = params.toString();
  return url.href;
}
function linkProtocols(secrets) {
  const { token = "", key = "" } = secrets;
  const list = [
    ...token === "" ? [] : [
      `bearer.${token}`
    ],
    ...key === "" ? [] : [
      `key.${key}`
    ]
  ];
  return list.length === 0 ? [] : [
    "chat",
    ...list
  ];
}
var Link = class {
  #socket;
  #dropped = false;
  /** Opens the socket; throws what the WebSocket constructor throws. */
  constructor(options) {
    const open = options.webSocket ?? ((url, list) => new WebSocket(url, list));
    const socket = this.#socket = open(options.url, options.protocols);
    socket.addEventListener("message", (event) => {
      if (this.#dropped || typeof event.data !== "string") return;
      options.onData();
      for (const line of event.data.split("\n")) {
        if (this.#dropped) return;
        options.onText(line);
      }
    });
    socket.addEventListener("close", (event) => {
      if (!this.#dropped) options.onClose(event.code, event.reason);
    });
  }
  /** Whether the socket is open: frames can be sent. */
  get open() {
    return this.#socket.readyState === OPEN;
  }
  /** Whether the socket has closed. */
  get closed() {
    return this.#socket.readyState === CLOSED;
  }
  /** Sends a frame as JSON. */
  send(frame) {
    this.#socket.send(JSON.stringify(frame));
  }
  /** Stops telling the client anything: it has given up on this socket. */
  drop() {
    this.#dropped = true;
  }
  /** Closes the socket; the promise resolves once it has closed. */
  close(code, reason) {
    const closed = new Promise((resolve) => this.#socket.addEventListener("close", () => resolve()));
    this.#socket.close(code, reason);
    return closed;
  }
};

// client/connection.ts
var Connection = class {
  #options;
  #timers;
  #link = null;
  #state = "idle";
  #welcomed = false;
  /** Whether any socket got a welcome since `connect()`. */
  #everWelcomed = false;
  #attempt = 0;
  #timer;
  /** A connection that opens with `connect()`. */
  constructor(options) {
    this.#options = options;
    this.#timers = options.timers;
  }
  /** The connection state. */
  get state() {
    return this.#state;
  }
  /** Whether the current socket got its welcome. */
  get welcomed() {
    return this.#welcomed;
  }
  /** Opens the connection unless it is open or opening. */
  connect() {
    if (this.#state !== "idle" && this.#state !== "closed") return;
    this.#attempt = 0;
    this.#everWelcomed = false;
    this.#open();
  }
  /** Reconnects at once when a reconnect is waiting. */
  reconnectNow() {
    if (this.#state !== "reconnecting") return;
    this.#timers.clearTimeout(this.#timer);
    this.#open();
  }
  /** Closes for good; resolves once the socket has closed. */
  close() {
    const link = this.#link;
    this.#detach();
    this.#timers.clearTimeout(this.#timer);
    this.#end(CloseCode.Normal, "");
    if (link === null || link.closed) return Promise.resolve();
    return link.close(CloseCode.Normal, "Bye");
  }
  /** The socket got its welcome: frames may go, and the backoff starts again. */
  welcome() {
    this.#welcomed = this.#everWelcomed = true;
    this.#attempt = 0;
  }
  /** Tells the `open` state, once the welcome is taken in. */
  opened() {
    this.#setState({
      state: "open"
    });
  }
  /** Whether a frame can be sent now: the socket is open and welcomed. */
  get writable() {
    return this.#link !== null && this.#link.open && this.#welcomed;
  }
  /** Sends a frame on the socket; only when `writable`. */
  send(frame) {
    this.#link?.send(frame);
  }
  /** Gives up on a link that brought nothing for a whole heartbeat timeout, and reconnects. */
  timeout() {
    const link = this.#link;
    this.#closed(CloseCode.HeartbeatTimeout, "No answer from the server");
    link?.close(CloseCode.HeartbeatTimeout, "Heartbeat timeout");
  }
  #open() {
    this.#setState({
      state: "connecting"
    });
    this.#welcomed = false;
    const { client, onData, onText } = this.#options;
    try {
      this.#link = new Link({
        url: this.#options.url(),
        protocols: linkProtocols(client),
        webSocket: client.webSocket,
        onData,
        onText,
        onClose: (code, reason) => this.#closed(code, reason)
      });
    } catch (error) {
      this.#closed(1006, error instanceof Error ? error.message : String(error));
      return;
    }
    onData();
  }
  #detach() {
    this.#link?.drop();
    this.#link = null;
    this.#welcomed = false;
    this.#timers.clearTimeout(this.#timer);
    this.#options.onDetach();
  }
  #closed(code, reason) {
    this.#detach();
    this.#options.onDrop(reason || "Connection closed");
    if (this.#state === "closed") return;
    const { reconnect } = this.#options.client;
    if (reconnect === false || isFinalClose({
      code,
      reason
    }, this.#everWelcomed)) {
      this.#end(code, reason);
      return;
    }
    const delayMs = reconnectDelay({
      attempt: this.#attempt++,
      random: this.#timers.random()
    }, reconnect);
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
    this.#options.onEnd(reason || "Connection closed");
    this.#setState({
      state: "closed",
      code,
      reason
    });
  }
  #setState(event) {
    this.#state = event.state;
    this.#options.events.emit("state", event);
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

// client/heartbeat.ts
var Heartbeat = class {
  #timers;
  #write;
  #onTimeout;
  /** The heartbeat in force: the welcome's, or the last ack's after `askInterval`. */
  #info = null;
  /** The ping interval asked for with `askInterval`; undefined for the server's own. */
  #asked;
  #lastFrameAt = 0;
  #timer;
  /** A heartbeat that beats once `start` is given the server's. */
  constructor(options) {
    this.#timers = options.timers;
    this.#write = options.write;
    this.#onTimeout = options.onTimeout;
  }
  /** Notes that a frame came (or a socket opened): the link is alive now. */
  heard() {
    this.#lastFrameAt = this.#timers.now();
  }
  /** Adopts a welcome's heartbeat (none when null) and beats at its interval. */
  start(info) {
    this.#info = info;
    if (info === null) return;
    if (this.#asked !== void 0) this.#write({
      type: "heartbeat",
      interval_ms: this.#asked
    });
    this.#timer = this.#timers.setTimeout(() => this.#beat(), info.interval_ms);
  }
  /** Adopts the heartbeat a `heartbeat_ack` gives, when it gives one. */
  ack(info) {
    if (info !== void 0) this.#info = info;
  }
  /**
   * Asks the server for pings every `intervalMs` (its own interval when
   * undefined), now when a heartbeat is in force and on every new socket.
   */
  askInterval(intervalMs) {
    this.#asked = intervalMs;
    if (this.#info === null) return;
    this.#write({
      type: "heartbeat",
      interval_ms: intervalMs ?? 0
    });
  }
  /** Stops beating (the socket is gone); the next `start` beats again. */
  stop() {
    this.#timers.clearTimeout(this.#timer);
  }
  #beat() {
    const info = this.#info;
    if (info === null) return;
    if (this.#timers.now() - this.#lastFrameAt > info.timeout_ms) return this.#onTimeout();
    this.#write({
      type: "heartbeat"
    });
    this.#timer = this.#timers.setTimeout(() => this.#beat(), info.interval_ms);
  }
};

// client/identity.ts
var Identity = class {
  #events;
  #write;
  #username;
  #uid = "";
  #rename;
  /** The identity asked for, before any welcome. */
  constructor(options) {
    this.#username = options.username;
    this.#events = options.events;
    this.#write = options.write;
  }
  /** The username: the one asked for, then the one the server gave. */
  get username() {
    return this.#username;
  }
  /** The public uid of the last welcome; "" before one. */
  get uid() {
    return this.#uid;
  }
  /** Adopts a welcome's username and uid. */
  welcome(frame) {
    this.#username = frame.username;
    this.#uid = frame.uid ?? "";
  }
  /** Whether `name` is this user's, compared as the server compares names. */
  isMe(name) {
    return nameKey(name) === nameKey(this.#username);
  }
  /** Whether this user sent a frame: by uid when it carries one, else by name. */
  sent(frame) {
    return frame.uid !== void 0 ? frame.uid === this.#uid : frame.username === this.#username;
  }
  /** Asks for a rename; resolves with the new name as the server spells it. */
  rename(name, context) {
    return new Promise((resolve, reject) => {
      if (this.#rename !== void 0) {
        reject(new ChatError("rename_pending", `A rename is under way: ${name}`));
        return;
      }
      if (this.isMe(name) && context.welcomed) {
        resolve(this.#username);
        return;
      }
      if (!this.#write({
        type: "rename",
        name,
        cid: context.cid
      })) {
        reject(new ChatError("closed", "Not connected"));
        return;
      }
      if (!context.inRoom) return resolve(name);
      this.#rename = {
        resolve,
        reject,
        cid: context.cid
      };
    });
  }
  /** Takes a live notice that changed a room's users: one renaming this user completes a rename. */
  presence(frame) {
    if (frame.event !== "rename" || frame.user === void 0) return;
    if (!this.isMe(frame.old_name ?? "")) return;
    const from = this.#username;
    this.#username = frame.user;
    const pending = this.#rename;
    this.#rename = void 0;
    this.#events.emit("renamed", {
      from,
      to: frame.user
    });
    pending?.resolve(frame.user);
  }
  /** Refuses the rename of client id `cid` with `error`; false when it is not the one waiting. */
  refuse(cid, error) {
    const pending = this.#rename;
    if (pending?.cid !== cid) return false;
    this.#rename = void 0;
    pending.reject(error);
    return true;
  }
  /** Fails the rename waiting for its notice, with `closed`. */
  fail(reason) {
    const pending = this.#rename;
    this.#rename = void 0;
    pending?.reject(new ChatError("closed", reason));
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

// client/outbox.ts
var RETRY_MAX_MS = 5e3;
function frameBytes(frame) {
  return new TextEncoder().encode(JSON.stringify({
    cid: "x".repeat(16),
    ...frame
  })).length;
}
var Outbox = class {
  #queue;
  #pacer = new Pacer();
  #timers;
  #write;
  #welcomed;
  #roomReady;
  #maxBytes = Infinity;
  #timer;
  /** An empty outbox. */
  constructor(options) {
    this.#timers = options.timers;
    this.#queue = new SendQueue(options.maxQueued, options.timers.random);
    this.#write = options.write;
    this.#welcomed = options.welcomed;
    this.#roomReady = options.roomReady;
  }
  /** Messages waiting for their fate. */
  get size() {
    return this.#queue.size;
  }
  /** Queues a message and sends what can go; refused at once when over the size limit. */
  add(frame) {
    const tooBig = this.#tooBig(frame);
    if (tooBig !== void 0) return sending(Promise.resolve(tooBig), "");
    const fate = this.#queue.add(frame);
    this.pump();
    return fate;
  }
  /** Adopts a welcome's size and rate limits. */
  configure(limits) {
    this.#maxBytes = limits.max_message_bytes;
    const rate = limits.rate_per_s !== void 0 && limits.burst !== void 0 ? {
      perS: limits.rate_per_s,
      burst: limits.burst
    } : void 0;
    this.#pacer.configure(rate, this.#timers.now());
  }
  /** Counts a frame sent outside the queue (it cannot wait): the messages wait the longer. */
  spend() {
    this.#pacer.spend(this.#timers.now());
  }
  /**
   * Takes a token for a frame that can wait (a read position): true when
   * it may go now; false, and nothing taken, while messages use them all.
   */
  tryTake() {
    return this.#pacer.take(this.#timers.now()) === 0;
  }
  /** Settles the message with client id `cid`; false when none waits. */
  settle(cid, fate) {
    return this.#queue.settle(cid, fate);
  }
  /** Lets the messages in doubt matching `which` go again, and sends what can go. */
  resend(which) {
    this.#queue.clear(which);
    this.pump();
  }
  /** Marks the messages in doubt matching `which` as plain unsent ones, sending nothing yet. */
  clear(which) {
    this.#queue.clear(which);
  }
  /**
   * Takes a `rate_limited` error. Frames spaced out here can reach the
   * server together (a stalled network lets them go at once), so its
   * bucket may be emptier than the pacer's: the pacer empties too. True
   * when the frame was a message: it goes again after a wait.
   */
  rateLimited(frame) {
    if (frame.code !== "rate_limited") return false;
    this.#pacer.drain(this.#timers.now());
    const retries = frame.cid === void 0 ? -1 : this.#queue.retry(frame.cid);
    if (retries <= 0) return false;
    this.pump(Math.min(RETRY_MAX_MS, 1e3 * retries));
    return true;
  }
  /** After a dropped socket: what was sent waits, in doubt, for the replay. */
  dropped() {
    this.#queue.dropped();
  }
  /** Refuses every message with `closed`, for good. */
  refuseAll(reason) {
    this.#queue.refuseAll("closed", reason);
  }
  /** Stops a pending `pump`. */
  stop() {
    this.#timers.clearTimeout(this.#timer);
  }
  /** Sends what the queue holds (after `delayMs`), as fast as the server's limit allows. */
  pump(delayMs = 0) {
    this.#timers.clearTimeout(this.#timer);
    if (delayMs > 0) {
      this.#timer = this.#timers.setTimeout(() => this.pump(), delayMs);
      return;
    }
    if (!this.#welcomed()) return;
    const ready = (item) => !item.uncertain && (item.frame.type === "private" || this.#roomReady(item.frame.room ?? ""));
    for (let item = this.#queue.next(ready); item !== void 0; item = this.#queue.next(ready)) {
      const tooBig = this.#tooBig(item.frame);
      if (tooBig !== void 0) {
        this.#queue.settle(item.frame.cid, tooBig);
        continue;
      }
      const wait = this.#pacer.take(this.#timers.now());
      if (wait > 0) return this.pump(wait);
      if (!this.#write(item.frame)) return;
      item.sent = true;
    }
  }
  /** The refusal of a frame over the server's limit (known from the first welcome). */
  #tooBig(frame) {
    const bytes = frameBytes(frame);
    if (bytes <= this.#maxBytes) return void 0;
    return {
      status: "refused",
      code: "message_too_big",
      reason: `Message too big: ${bytes} bytes`
    };
  }
};

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

// client/private_talks.ts
var RESUMED_CONVERSATIONS = 5;
var PrivateTalks = class {
  /** The private conversations seen, by the other person's uid. */
  #talks = new Conversations();
  /** Conversations asked for again after a reconnect, whose frames are `missed`. */
  #resuming = /* @__PURE__ */ new Set();
  #events;
  #write;
  #uid;
  #settle;
  /** No conversations yet. */
  constructor(options) {
    this.#events = options.events;
    this.#write = options.write;
    this.#uid = options.uid;
    this.#settle = options.settle;
  }
  /** The last id seen in the conversation with uid `other`; 0 when none. */
  last(other) {
    return this.#talks.last(other);
  }
  /** Asks again, after a welcome, for what the most recent conversations missed. */
  resume() {
    for (const resume of this.#talks.resumes(RESUMED_CONVERSATIONS)) {
      this.#resuming.add(resume.with);
      this.#write({
        type: "conversation",
        ...resume
      });
    }
  }
  /** Takes a live private message; one seen already is dropped. */
  receive(frame) {
    this.#settle(frame);
    const other = Conversations.other(frame, this.#uid());
    if (other !== void 0 && !this.#talks.record(other, frame)) return;
    this.#events.emit("private", {
      frame,
      replayed: false,
      missed: false
    });
  }
  /** A conversation read again: what was not shown yet, and the next page when there is one. */
  conversation(frame) {
    const missed = this.#resuming.delete(frame.with);
    for (const stored of frame.history) {
      if (!this.#talks.record(frame.with, stored)) continue;
      this.#settle(stored);
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
  /**
   * The last frame sent per target: when (for the pace), and its cid, the
   * one a `rate_limited` may name ("" once taken).
   */
  #sent = /* @__PURE__ */ new Map();
  #seq = 0;
  /**
   * Read state that writes its frames with `write`: false when it sent
   * nothing (not connected, or no token of the rate limit left).
   */
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
  /**
   * Takes a `read` or `seen` frame; true when it moved a position forward,
   * or told a receipt again (a conversation opened: its messages are shown
   * anew, and their receipt with them).
   */
  receive(frame) {
    const position = {
      id: frame.id,
      epoch: frame.epoch
    };
    if (frame.type === "seen") {
      const known = this.#seen.get(frame.with);
      if (known?.epoch === position.epoch && known.id > position.id) return false;
      this.#seen.set(frame.with, position);
      return true;
    }
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
    const wait = (this.#sent.get(key)?.at ?? -Infinity) + READ_INTERVAL_MS - this.#timers.now();
    if (wait <= 0) this.#send(key);
    else this.#timer.set(key, this.#timers.setTimeout(() => this.#send(key), wait));
    return true;
  }
  /** Sends the frames that wait for a connection (after a welcome). */
  flush() {
    for (const key of [
      ...this.#due.keys()
    ]) {
      this.#timers.clearTimeout(this.#timer.get(key));
      this.#send(key);
    }
  }
  /**
   * Takes a `rate_limited` answer to the frame of `cid`: frames spaced out
   * by the client can reach the server together. The position goes again
   * an interval later unless a newer one waits. False when no frame of
   * this state's has that cid.
   */
  rateLimited(cid) {
    for (const [key, sent] of this.#sent) {
      if (sent.cid !== cid) continue;
      sent.cid = "";
      if (!this.#due.has(key)) this.#due.set(key, sent.frame);
      if (!this.#timer.has(key)) this.#sendLater(key);
      return true;
    }
    return false;
  }
  /** Cancels the paced frames' timers. */
  dispose() {
    for (const timer of this.#timer.values()) this.#timers.clearTimeout(timer);
    this.#timer.clear();
  }
  #send(key) {
    this.#timer.delete(key);
    const frame = this.#due.get(key);
    if (frame === void 0) return;
    const cid = `read-${++this.#seq}`;
    if (!this.#write({
      ...frame,
      cid
    })) {
      return this.#sendLater(key);
    }
    this.#due.delete(key);
    this.#sent.set(key, {
      at: this.#timers.now(),
      cid,
      frame
    });
  }
  /** Tries the target's frame again an interval from now. */
  #sendLater(key) {
    this.#timer.set(key, this.#timers.setTimeout(() => this.#send(key), READ_INTERVAL_MS));
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
    if (frame.event === "join" || frame.event === "leave" || frame.event === "kick") {
      return this.#applyPresence(frame.event, frame.users ?? [
        user
      ]);
    } else if (frame.event === "rename" && frame.old_name !== void 0) {
      const old = frame.old_name;
      this.users = this.users.map((u) => same(u, old) ? user : u);
    } else {
      return false;
    }
    return true;
  }
  /** Adds joined users or removes those who left; true when the list changed. */
  #applyPresence(event, users) {
    const before = this.users.length;
    if (event === "join") {
      const known = new Set(this.users.map(nameKey));
      const added = users.filter((u) => !known.has(nameKey(u)));
      this.users = [
        ...this.users,
        ...new Set(added)
      ];
      this.count += this.users.length - before;
    } else {
      const keys = new Set(users.map(nameKey));
      this.users = this.users.filter((u) => !keys.has(nameKey(u)));
      const gone = before - this.users.length;
      if (gone > 0) this.count = Math.max(this.users.length, this.count - gone);
    }
    return this.users.length !== before;
  }
};

// client/rooms.ts
function roomKey(room) {
  return roomName(room) ?? room;
}
var Rooms = class {
  #logs = /* @__PURE__ */ new Map();
  #joins = /* @__PURE__ */ new Map();
  #events;
  #write;
  #onMessage;
  #onPresence;
  #onReplayDone;
  #first;
  #epoch = "";
  /** No rooms yet; `first` is the room the first socket asks for. */
  constructor(options) {
    this.#first = roomKey(options.first);
    this.#events = options.events;
    this.#write = options.write;
    this.#onMessage = options.onMessage;
    this.#onPresence = options.onPresence;
    this.#onReplayDone = options.onReplayDone;
  }
  /** The first room: the one the socket's URL names, and the default of every method. */
  get first() {
    return this.#first;
  }
  /** The epoch of the last welcome or joined; "" before one. */
  get epoch() {
    return this.#epoch;
  }
  /** The highest id seen in the first room, which the socket's URL resumes it from; 0 when none. */
  get firstLast() {
    return this.#logs.get(this.#first)?.last ?? 0;
  }
  /** The rooms the client is in, the first one first. */
  get names() {
    return [
      ...this.#logs.keys()
    ];
  }
  /** How many rooms the client is in. */
  get size() {
    return this.#logs.size;
  }
  /** `room` as the server spells it, or the first room when omitted. */
  key(room) {
    return roomKey(room ?? this.#first);
  }
  /** The highest id seen in `room` (the first when omitted); 0 when none. */
  last(room) {
    return this.#logs.get(this.key(room))?.last ?? 0;
  }
  /** How many users `room` (the first when omitted) has, as last told. */
  userCount(room) {
    return this.#logs.get(this.key(room))?.count ?? 0;
  }
  /** The online users of `room` (the first when omitted), as last told. */
  users(room) {
    return [
      ...this.#logs.get(this.key(room))?.users ?? []
    ];
  }
  /** Whether messages to `room` may go: not while the client rejoins it. */
  ready(room) {
    return this.#logs.get(room)?.live !== false;
  }
  /** Joins `room` with the client id `cid`; resolves with the `joined` frame. */
  join(room, cid) {
    return new Promise((resolve, reject) => {
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
  /**
   * Adopts a welcome: enters its room, the first from now on. Returns the
   * joins that resume the other rooms, to write once the welcome is told.
   */
  welcome(frame) {
    this.#first = frame.room;
    const epoch = this.#epoch;
    const rejoin = [
      ...this.#logs.values()
    ].filter((log) => log.room !== frame.room).map((log) => {
      const since = log.last > 0 ? {
        since: log.last,
        ...epoch === "" ? {} : {
          epoch
        }
      } : {};
      return {
        type: "join",
        room: log.room,
        ...since
      };
    });
    this.#enter(frame);
    return rejoin;
  }
  /** Shows a page of a room's history (a welcome's, a joined's, a later one); the last ends the replay. */
  replay(frame) {
    for (const stored of frame.history) this.roomFrame(stored, true);
    if (!frame.more) this.#replayDone(frame.room);
  }
  /** Takes a `joined` frame: the answer to the oldest join of its room, or a resume. */
  joined(frame) {
    this.#enter(frame);
    const key = nameKey(frame.room);
    const entry = [
      ...this.#joins
    ].find(([, pending2]) => pending2.room === key);
    if (entry !== void 0) this.#joins.delete(entry[0]);
    const pending = entry?.[1];
    this.#events.emit("joined", frame);
    pending?.resolve(frame);
    this.replay(frame);
  }
  /** Takes a further page of a room's history. */
  history(frame) {
    if (!this.#logs.has(frame.room)) return;
    this.replay(frame);
  }
  /** Takes a `left` frame: the room is forgotten. */
  left(frame) {
    this.#logs.delete(frame.room);
    if (frame.room === this.#first) this.#first = this.names[0] ?? this.#first;
    this.#events.emit("left", frame);
  }
  /** Takes a page of a room's online users. */
  setUsers(frame) {
    const log = this.#logs.get(frame.room);
    if (log === void 0) return;
    log.setUsers(frame.users, {
      count: frame.connected_count,
      offset: frame.offset
    });
    this.#emitUsers(log);
  }
  /** Takes a room's message or notice, live or `replayed`; one seen already is dropped. */
  roomFrame(frame, replayed) {
    const log = this.#logs.get(frame.room);
    if (log === void 0 || !log.firstSight(frame)) return;
    const missed = replayed && log.recovering;
    if (frame.type === "message") {
      this.#onMessage(frame);
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
    this.#onPresence(frame);
  }
  /** Refuses the join of client id `cid` with `error`; false when none waits. */
  refuseJoin(cid, error) {
    const join = this.#joins.get(cid);
    if (join === void 0) return false;
    this.#joins.delete(cid);
    join.reject(error);
    return true;
  }
  /** The socket is gone: every room waits for its rejoin. */
  detach() {
    for (const log of this.#logs.values()) log.live = false;
  }
  /** Fails the joins waiting for an answer, with `closed`. */
  failJoins(reason) {
    const pending = [
      ...this.#joins.values()
    ];
    this.#joins.clear();
    for (const { reject } of pending) reject(new ChatError("closed", reason));
  }
  /** Adopts a welcome's or joined's epoch and users. */
  #enter(frame) {
    let log = this.#logs.get(frame.room);
    if (log === void 0) {
      log = new RoomLog(frame.room);
      this.#logs.set(frame.room, log);
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
  /** A room's replay is over: messages in doubt that it did not show stored go out again. */
  #replayDone(room) {
    const log = this.#logs.get(room);
    if (log !== void 0) log.recovering = false;
    this.#onReplayDone(room);
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
};

// client/timers.ts
var TIMERS = Object.freeze({
  now: () => Date.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle),
  random: () => Math.random()
});

// client/chat_client.ts
var ChatClient = class {
  #timers;
  #events = new Emitter();
  #outbox;
  #rooms;
  #talks;
  #heartbeat;
  #connection;
  #me;
  #seq = 0;
  /** When a `typing` frame last went out, per room or `@person`. */
  #typedAt = /* @__PURE__ */ new Map();
  /** Own read positions, the others' receipts, and the `read` frames waiting. */
  #reads;
  /** A client that connects when `connect()` is called. */
  constructor(options) {
    new URL(options.url);
    const timers = this.#timers = options.timers ?? TIMERS;
    const events = this.#events;
    const write = (frame) => this.#write(frame);
    this.#outbox = new Outbox({
      timers,
      maxQueued: options.maxQueued ?? 100,
      write: (frame) => this.#write(frame, true),
      welcomed: () => this.#connection.welcomed,
      roomReady: (room) => this.#rooms.ready(room)
    });
    this.#me = new Identity({
      username: options.username ?? "",
      events,
      write
    });
    this.#rooms = new Rooms({
      first: options.room ?? DEFAULT_ROOM,
      events,
      write,
      onMessage: (frame) => this.#settleOwn(frame),
      onPresence: (frame) => this.#me.presence(frame),
      onReplayDone: (room) => this.#outbox.resend((item) => item.frame.type === "message" && item.frame.room === room)
    });
    this.#talks = new PrivateTalks({
      events,
      write,
      uid: () => this.#me.uid,
      settle: (frame) => this.#settleOwn(frame)
    });
    this.#heartbeat = new Heartbeat({
      timers,
      write,
      onTimeout: () => this.#connection.timeout()
    });
    this.#reads = new ReadState({
      timers,
      write: (frame) => this.#writeSpare(frame)
    });
    this.#connection = this.#connect(options);
  }
  /** The username: the one asked for, then the one the server gave. */
  get username() {
    return this.#me.username;
  }
  /**
   * This user's public identity, from the last welcome ("" before one): own
   * messages carry it as `uid`, across renames, reloads and tabs with one key.
   */
  get uid() {
    return this.#me.uid;
  }
  /** The connection state. */
  get state() {
    return this.#connection.state;
  }
  /** The rooms the client is in, the first one first. */
  get rooms() {
    return this.#rooms.names;
  }
  /** Messages waiting for their fate. */
  get queued() {
    return this.#outbox.size;
  }
  /** How many users `room` has (the first room when omitted), as last told. */
  userCount(room) {
    return this.#rooms.userCount(room);
  }
  /** The online users of `room` (the first room when omitted), as last told: a big room's first page. */
  users(room) {
    return this.#rooms.users(room);
  }
  /** Calls `listener` with every `type` event; returns the function that stops it. */
  on(type, listener) {
    return this.#events.on(type, listener);
  }
  /** Opens the connection; it reconnects by itself until `close()`. */
  connect() {
    this.#connection.connect();
  }
  /** Reconnects at once when a reconnect is waiting (a tab shown again, the network back). */
  reconnectNow() {
    this.#connection.reconnectNow();
  }
  /**
   * Closes the connection for good; queued messages are refused with
   * `closed`. The promise resolves once the socket has closed.
   */
  close() {
    return this.#connection.close();
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
    if (this.#connection.state === "closed") {
      return sending(Promise.resolve({
        status: "refused",
        code: "closed",
        reason: "Client closed"
      }), "");
    }
    return this.#outbox.add(this.#frame(text, options));
  }
  /**
   * The UTF-8 bytes `send(text, options)` would send, client id included:
   * more than the server's `limits.max_message_bytes` is refused.
   */
  messageBytes(text, options = {}) {
    return frameBytes(this.#frame(text, options));
  }
  #frame(text, options) {
    const room = this.#rooms.key(options.room);
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
  /** Joins a room on the same socket; resolves with the `joined` frame. */
  join(room) {
    return this.#rooms.join(room, this.#cid());
  }
  /** Leaves a room; the `left` event follows. False when not connected. */
  leave(room) {
    return this.#write({
      type: "leave",
      room,
      cid: this.#cid()
    });
  }
  /** Renames this user; resolves with the new name as the server spells it. */
  rename(name) {
    const context = {
      cid: this.#cid(),
      welcomed: this.#connection.welcomed
    };
    return this.#me.rename(name, {
      ...context,
      inRoom: this.#rooms.size > 0
    });
  }
  /**
   * Says this user is typing, in a room (the first when omitted) or to one
   * user with `to`; call it on every key press: it sends at most one frame
   * per TYPING_INTERVAL_MS per room or person, and nothing while not
   * connected or while messages use every token of the rate limit.
   */
  typing(options = {}) {
    const { to } = options;
    const room = this.#rooms.key(options.room);
    const target = to === void 0 ? {
      room
    } : {
      to
    };
    const key = to === void 0 ? room : `@${nameKey(to)}`;
    const now = this.#timers.now();
    if (now - (this.#typedAt.get(key) ?? -Infinity) < TYPING_INTERVAL_MS) return;
    if (this.#writeSpare({
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
      with: other,
      cid: this.#cid()
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
    const { where, last } = this.#readTarget(target);
    const epoch = this.#rooms.epoch;
    if (last === 0 || epoch === "") return false;
    const to = "with" in where && target.to !== void 0 ? {
      to: target.to
    } : {};
    return this.#reads.mark({
      ...where,
      ...to
    }, {
      id: last,
      epoch
    });
  }
  /**
   * How many messages of a room (the first when neither is given) or of the
   * conversation with uid `with` came after this identity's read position,
   * counted by ids; undefined while no position is known.
   */
  unread(target = {}) {
    const { where, last } = this.#readTarget(target);
    const position = this.#reads.position(where);
    if (position === void 0 || position.epoch !== this.#rooms.epoch) return void 0;
    return Math.max(0, last - position.id);
  }
  /** A room (the first when neither is given) or a conversation, and the newest id received there. */
  #readTarget(target) {
    const other = target.with;
    return other === void 0 ? {
      where: {
        room: this.#rooms.key(target.room)
      },
      last: this.#rooms.last(target.room)
    } : {
      where: {
        with: other
      },
      last: this.#talks.last(other)
    };
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
      type: "conversations",
      cid: this.#cid()
    });
  }
  /**
   * Asks the server for a slower heartbeat (a hidden tab, a phone saving its
   * battery), in milliseconds between pings; the server takes it within 1 to
   * 10 times its own interval and scales its timeout alike. Without an
   * argument, back to the server's own. Kept across reconnects.
   */
  setHeartbeatInterval(intervalMs) {
    this.#heartbeat.askInterval(intervalMs);
  }
  /**
   * Asks the server for the online users of a room; the `users` event
   * answers. A big room's list comes in pages: ask again from `offset` (the
   * names held so far) for the next. False when not connected.
   */
  refreshUsers(room, offset = 0) {
    return this.#write({
      type: "users",
      room: room ?? this.#rooms.first,
      ...offset ? {
        offset
      } : {},
      cid: this.#cid()
    });
  }
  // -------------------------------------------------------------------------
  // The socket
  /** The connection, which tells each part of the client when a socket comes and goes. */
  #connect(options) {
    return new Connection({
      client: options,
      timers: this.#timers,
      events: this.#events,
      url: () => linkUrl({
        url: options.url,
        username: this.#me.username,
        room: this.#rooms.first,
        heartbeat: options.heartbeat !== false,
        since: this.#rooms.firstLast,
        epoch: this.#rooms.epoch
      }),
      onData: () => this.#heartbeat.heard(),
      onText: (text) => this.#onText(text),
      onDetach: () => {
        this.#rooms.detach();
        this.#outbox.stop();
        this.#heartbeat.stop();
      },
      onDrop: (reason) => {
        this.#outbox.dropped();
        this.#rooms.failJoins(reason);
        this.#me.fail(reason);
      },
      onEnd: (reason) => {
        this.#reads.dispose();
        this.#outbox.refuseAll(reason);
      }
    });
  }
  /** Sends a frame now; the server's rate limit counts it, so the pacer does too. */
  #write(frame, paced = false) {
    if (!this.#connection.writable) return false;
    if (!paced) this.#outbox.spend();
    this.#connection.send(frame);
    return true;
  }
  /**
   * Writes a frame that can wait or be left out (a read position, "is
   * typing") only with a token of the rate limit to spare: spent at once
   * like a pong, it could push a fast typist's next frame over the
   * server's limit.
   */
  #writeSpare(frame) {
    if (!this.#connection.writable || !this.#outbox.tryTake()) return false;
    this.#connection.send(frame);
    return true;
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
        return this.#rooms.joined(frame);
      case "history":
        return this.#rooms.history(frame);
      case "left":
        return this.#rooms.left(frame);
      case "message":
      case "system":
        return this.#rooms.roomFrame(frame, false);
      case "private":
        return this.#talks.receive(frame);
      case "users":
        return this.#rooms.setUsers(frame);
      case "ping":
        this.#write({
          type: "pong"
        });
        return;
      case "error":
        return this.#onError(frame);
      case "heartbeat_ack":
        return this.#heartbeat.ack(frame.heartbeat);
      case "conversation":
        return this.#talks.conversation(frame);
      case "typing":
        if (!this.#me.isMe(frame.user)) this.#events.emit("typing", frame);
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
    this.#connection.welcome();
    this.#me.welcome(frame);
    this.#outbox.configure(frame.limits);
    const rejoin = this.#rooms.welcome(frame);
    this.#connection.opened();
    this.#events.emit("welcome", frame);
    this.#rooms.replay(frame);
    for (const join of rejoin) this.#write(join);
    this.#talks.resume();
    this.#outbox.clear((item) => item.frame.type === "private");
    this.#reads.flush();
    this.#heartbeat.start(frame.heartbeat);
    this.#outbox.pump();
  }
  #settleOwn(frame) {
    if (frame.cid !== void 0 && this.#me.sent(frame)) {
      this.#outbox.settle(frame.cid, {
        status: "stored",
        frame
      });
    }
  }
  #onError(frame) {
    if (this.#outbox.rateLimited(frame)) return;
    const { cid } = frame;
    const paceOnly = frame.code === "rate_limited";
    if (paceOnly && cid !== void 0 && this.#reads.rateLimited(cid)) return;
    if (paceOnly && cid === void 0) return;
    if (cid !== void 0) {
      const fate = {
        status: "refused",
        code: frame.code,
        reason: frame.message
      };
      if (this.#outbox.settle(cid, fate)) return;
      const error = new ChatError(frame.code, frame.message);
      if (this.#rooms.refuseJoin(cid, error) || this.#me.refuse(cid, error)) return;
    }
    this.#events.emit("error", frame);
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
  CONVERSATIONS_INTERVAL_MS,
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
