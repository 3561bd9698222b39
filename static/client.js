// The chat page client: one ES module, no framework, no build step.
//
// Every piece of user-supplied text reaches the DOM through textContent only,
// so a message like `<img src=x onerror=alert(1)>` is shown, never parsed.

const NAME_KEY = "chat.username";
const DEFAULT_ROOM = "lobby";
const MAX_NAME_LENGTH = 32;
// The server's rule (chat/names.ts) in short: letters, digits, space, `_ - .`; the server
// also refuses invisible code points and mixed scripts, and answers with the reason.
const NAME_PATTERN = /^[\p{L}\p{M}\p{N} _.\-]+$/u;
const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 30_000;
// Within this many pixels of the bottom the log counts as "at the bottom".
const STICKY_PX = 48;
// Ids remembered per room for de-duplication; older ones are below `last` anyway.
const SEEN_LIMIT = 2000;

const CLOSE_REASONS = new Map([
  [1000, "Connection closed"],
  [1001, "Server shutting down"],
  [1006, "Connection lost"],
  [1008, "Refused by the server"],
  [1009, "Message too big"],
  [1011, "Server error"],
  [4000, "Heartbeat timeout"],
  [4001, "Room closed"],
  [4003, "Kicked"],
  [4008, "Slow consumer"],
  [4009, "Username already in use"],
]);

// Reconnecting cannot help after these: the server refused this user or room.
const FINAL_CODES = new Set([1008, 4001, 4003]);

const $ = (id) => {
  const element = document.getElementById(id);
  if (element === null) throw new Error(`Missing element: ${id}`);
  return element;
};

const ui = {
  app: $("app"),
  status: $("status"),
  statusText: $("status-text"),
  retryNow: $("retry-now"),
  joinForm: $("join-form"),
  username: $("username"),
  room: $("room"),
  connect: $("connect"),
  joinError: $("join-error"),
  session: $("session"),
  myName: $("my-name"),
  roomName: $("room-name"),
  renameButton: $("rename-button"),
  renameForm: $("rename-form"),
  renameInput: $("rename-input"),
  renameError: $("rename-error"),
  switchButton: $("switch-button"),
  switchForm: $("switch-form"),
  switchInput: $("switch-input"),
  switchError: $("switch-error"),
  disconnect: $("disconnect"),
  send: $("send"),
  messages: $("messages"),
  newMessages: $("new-messages"),
  announcer: $("announcer"),
  userCount: $("user-count"),
  userList: $("user-list"),
  composer: $("composer"),
  privateTarget: $("private-target"),
  privateName: $("private-name"),
  privateCancel: $("private-cancel"),
  message: $("message"),
  composerError: $("composer-error"),
};

const encoder = new TextEncoder();

const state = {
  /** @type {WebSocket | null} */
  ws: null,
  /** Whether the user wants to be connected (Connect pressed, not Disconnect). */
  wanted: false,
  /** Whether the current socket got its `welcome`. */
  welcomed: false,
  /** Whether any socket got a `welcome` since Connect was pressed. */
  everWelcomed: false,
  /** The name to connect with; "" joins anonymously until the server names us. */
  username: "",
  room: DEFAULT_ROOM,
  /** Set while an in-band room switch waits for `joined`. */
  pendingRoom: "",
  pendingRename: "",
  attempt: 0,
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  reconnectTimer: undefined,
  /** @type {ReturnType<typeof setInterval> | undefined} */
  countdownTimer: undefined,
  reconnectAt: 0,
  lastReason: "",
  /** @type {ReturnType<typeof setInterval> | undefined} */
  heartbeatTimer: undefined,
  /** @type {{ interval_ms: number, timeout_ms: number } | null} */
  heartbeat: null,
  lastFrameAt: 0,
  /** The server's limit, from `welcome.limits`; none before it, since nothing is sent before it. */
  maxMessageBytes: Infinity,
  /** @type {string[]} */
  users: [],
  privateTo: "",
  /** Per room: ids shown and the highest one, to resume with `?since=`. */
  /** @type {Map<string, { ids: Set<number>, last: number }>} */
  seen: new Map(),
  /** The epoch of the ids in `seen`: sent back with `since`; a new one means they restarted. */
  epoch: "",
};

// ---------------------------------------------------------------------------
// Small helpers

function normalizeName(raw) {
  const name = raw.normalize("NFKC").trim();
  if (name.length === 0 || [...name].length > MAX_NAME_LENGTH) return undefined;
  return NAME_PATTERN.test(name) ? name : undefined;
}

// The server's nameKey: names that differ only by width or case are one name.
function nameKey(name) {
  return name.normalize("NFKC").toUpperCase().toLowerCase().normalize("NFKC");
}

function sameName(a, b) {
  return nameKey(a) === nameKey(b);
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function loadName() {
  try {
    return localStorage.getItem(NAME_KEY) ?? "";
  } catch {
    // Storage can be off (privacy settings); the page works without it.
    return "";
  }
}

function saveName(name) {
  try {
    localStorage.setItem(NAME_KEY, name);
  } catch {
    // See loadName.
  }
}

function setRoomInUrl(room) {
  const url = new URL(location.href);
  if (url.searchParams.get("room") === room) return;
  url.searchParams.set("room", room);
  history.replaceState(null, "", url);
}

function formatTime(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return { text: "", full: "" };
  return {
    text: date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }),
    full: date.toLocaleString(),
  };
}

// ---------------------------------------------------------------------------
// Status line

function setStatus(kind, text) {
  ui.status.dataset.state = kind;
  ui.app.dataset.state = kind;
  ui.statusText.textContent = text;
  ui.retryNow.hidden = kind !== "reconnecting";
}

function connectedStatus() {
  const heartbeat = state.heartbeat === null ? "" : " · heartbeat on";
  setStatus("connected", `Connected as ${state.username}${heartbeat}`);
}

function reconnectingStatus() {
  const seconds = Math.max(1, Math.ceil((state.reconnectAt - Date.now()) / 1000));
  const reason = state.lastReason === "" ? "" : ` (${state.lastReason})`;
  setStatus("reconnecting", `Reconnecting in ${seconds} s…${reason}`);
}

function showPanels() {
  ui.joinForm.hidden = state.wanted;
  ui.session.hidden = !state.wanted;
  ui.myName.textContent = state.username === "" ? "(anonymous)" : state.username;
  ui.roomName.textContent = `#${state.room}`;
  const live = state.welcomed && state.ws !== null;
  ui.message.disabled = !state.wanted;
  ui.send.disabled = !state.wanted;
  ui.renameButton.disabled = !live;
  ui.switchButton.disabled = !live;
  if (!live) {
    hideInlineForm(ui.renameForm, ui.renameButton);
    hideInlineForm(ui.switchForm, ui.switchButton);
  }
}

// ---------------------------------------------------------------------------
// Messages

function isAtBottom() {
  const log = ui.messages;
  return log.scrollHeight - log.scrollTop - log.clientHeight <= STICKY_PX;
}

function scrollToBottom() {
  ui.messages.scrollTop = ui.messages.scrollHeight;
  ui.newMessages.hidden = true;
}

/** Appends one rendered item, keeping the view at the bottom unless the user scrolled up. */
function append(item, { own = false, live = true } = {}) {
  const stick = own || isAtBottom();
  ui.messages.append(item);
  if (stick) scrollToBottom();
  else if (live) ui.newMessages.hidden = false;
}

function announce(text) {
  ui.announcer.textContent = text;
}

function meta(sender, timestamp, tag) {
  const line = el("div", "meta");
  line.append(el("span", "sender", sender));
  if (tag !== undefined) line.append(el("span", "tag", tag));
  const time = formatTime(timestamp);
  const stamp = el("time", "time", time.text);
  stamp.dateTime = timestamp;
  stamp.title = time.full;
  line.append(stamp);
  return line;
}

function renderChat(frame, live) {
  const own = sameName(frame.username, state.username);
  const item = el("li", `message ${own ? "own" : "other"}`);
  item.dataset.testid = "message";
  item.dataset.id = String(frame.id);
  item.dataset.room = frame.room;
  const bubble = el("div", "bubble");
  bubble.append(meta(frame.sender, frame.timestamp), el("p", "text", frame.message));
  item.append(bubble);
  append(item, { own: own && live, live });
  if (live && !own) announce(`${frame.sender}: ${frame.message}`);
}

function renderPrivate(frame) {
  const own = sameName(frame.username, state.username);
  const item = el("li", `message private ${own ? "own" : "other"}`);
  item.dataset.testid = "message";
  item.dataset.private = "true";
  const tag = own ? `Private · to ${frame.to}` : `Private · from ${frame.sender}`;
  const bubble = el("div", "bubble");
  bubble.append(meta(frame.sender, frame.timestamp, tag), el("p", "text", frame.message));
  item.append(bubble);
  append(item, { own });
  if (!own) announce(`Private message from ${frame.sender}: ${frame.message}`);
}

function renderSystem(frame, live) {
  const item = el("li", "message system");
  item.dataset.testid = "system";
  item.dataset.id = String(frame.id);
  item.dataset.room = frame.room;
  item.dataset.event = frame.event;
  const bubble = el("div", "bubble");
  const time = formatTime(frame.timestamp);
  const stamp = el("time", "time", time.text);
  stamp.dateTime = frame.timestamp;
  stamp.title = time.full;
  bubble.append(el("span", "text", frame.message), stamp);
  item.append(bubble);
  append(item, { live });
  if (live) announce(frame.message);
}

/** A notice made by the page itself (errors, reconnects); it has no server id. */
function renderNotice(text, kind = "notice") {
  const item = el("li", `message system local ${kind}`);
  item.dataset.testid = kind;
  const bubble = el("div", "bubble");
  bubble.append(el("span", "text", text));
  item.append(bubble);
  append(item);
  announce(text);
}

function clearMessages() {
  ui.messages.replaceChildren();
  ui.newMessages.hidden = true;
}

// ---------------------------------------------------------------------------
// De-duplication by (room, id): history after a reconnect may overlap what is shown.

function seenFor(room) {
  let entry = state.seen.get(room);
  if (entry === undefined) {
    entry = { ids: new Set(), last: 0 };
    state.seen.set(room, entry);
  }
  return entry;
}

/** Records the frame; false when it was shown already. */
function firstSight(frame) {
  if (typeof frame.id !== "number") return true;
  const entry = seenFor(frame.room);
  if (entry.ids.has(frame.id)) return false;
  entry.ids.add(frame.id);
  if (entry.ids.size > SEEN_LIMIT) {
    const oldest = entry.ids.values().next().value;
    entry.ids.delete(oldest);
  }
  if (frame.id > entry.last) entry.last = frame.id;
  return true;
}

function showRoomFrame(frame, live) {
  if (frame.room !== state.room || !firstSight(frame)) return;
  if (frame.type === "system") {
    renderSystem(frame, live);
    if (live) applyPresence(frame);
  } else {
    renderChat(frame, live);
  }
}

/**
 * Adopts the server's epoch; a different one means its ids restarted (a
 * server restart with memory storage): the ids seen so far mean nothing.
 */
function adoptEpoch(epoch) {
  if (typeof epoch !== "string" || epoch === "") return;
  if (state.epoch !== "" && epoch !== state.epoch) state.seen.clear();
  state.epoch = epoch;
}

function showHistory(room, history, recovered, resumed) {
  if (resumed && !recovered) {
    // Ids may have restarted (a server restart with memory storage): forget the old ones.
    state.seen.delete(room);
    renderNotice("Some messages may be missing.", "warning");
  }
  for (const frame of history) showRoomFrame(frame, false);
}

// ---------------------------------------------------------------------------
// Online users

function setUsers(users) {
  state.users = [...new Set(users)];
  renderUsers();
}

function applyPresence(frame) {
  const user = typeof frame.user === "string" ? frame.user : "";
  if (frame.event === "join" && user !== "") {
    if (!state.users.some((u) => sameName(u, user))) state.users.push(user);
  } else if (frame.event === "leave" && user !== "") {
    state.users = state.users.filter((u) => !sameName(u, user));
    if (state.privateTo !== "" && sameName(state.privateTo, user)) {
      setPrivateTarget("");
      renderNotice(`${user} left; private message cancelled.`);
    }
  } else if (frame.event === "rename" && user !== "" && typeof frame.old_name === "string") {
    const old = frame.old_name;
    state.users = state.users.map((u) => (sameName(u, old) ? user : u));
    if (sameName(old, state.username)) renamed(user);
    if (state.privateTo !== "" && sameName(state.privateTo, old)) setPrivateTarget(user);
  } else {
    return;
  }
  renderUsers();
}

function renderUsers() {
  const items = state.users.map((name) => {
    const item = el("li", "user");
    if (sameName(name, state.username)) {
      item.classList.add("me");
      item.append(el("span", "user-name", name), el("span", "you", "you"));
    } else {
      const button = el("button", "user-name", name);
      button.type = "button";
      button.dataset.user = name;
      button.setAttribute("aria-label", `Send a private message to ${name}`);
      if (state.privateTo !== "" && sameName(state.privateTo, name)) {
        button.setAttribute("aria-pressed", "true");
      }
      item.append(button);
    }
    return item;
  });
  ui.userList.replaceChildren(...items);
  ui.userCount.textContent = String(state.users.length);
}

function setPrivateTarget(name) {
  state.privateTo = name;
  ui.privateTarget.hidden = name === "";
  ui.privateName.textContent = name;
  ui.composer.classList.toggle("is-private", name !== "");
  ui.message.placeholder = name === "" ? "Type a message…" : `Private message to ${name}…`;
  renderUsers();
}

// ---------------------------------------------------------------------------
// Connection

function socketUrl(resume) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  // Batched: frames of one server tick arrive as one, a JSON object per line.
  const params = new URLSearchParams({ room: state.room, batch: "1" });
  let path;
  if (state.username === "") {
    path = "/ws/chat";
    params.set("heartbeat", "1");
  } else {
    path = `/ws/chat/${encodeURIComponent(state.username)}/heartbeat`;
  }
  const last = state.seen.get(state.room)?.last ?? 0;
  if (resume && last > 0) {
    params.set("since", String(last));
    if (state.epoch !== "") params.set("epoch", state.epoch);
  }
  return `${scheme}//${location.host}${path}?${params}`;
}

// With AUTH_SECRET on the server, open the page as /#token=<jwt>: a fragment
// never reaches server logs. The token is kept for this tab only and offered
// as the `bearer.<jwt>` subprotocol.
function authToken() {
  try {
    const match = /(?:^#|&)token=([^&]+)/.exec(location.hash);
    if (match) {
      sessionStorage.setItem("chat.token", decodeURIComponent(match[1]));
      history.replaceState(null, "", location.pathname + location.search);
    }
    return sessionStorage.getItem("chat.token") ?? "";
  } catch {
    return "";
  }
}

function openSocket(resume) {
  clearTimers();
  state.welcomed = false;
  state.pendingRoom = "";
  state.pendingRename = "";
  setStatus("connecting", resume ? "Reconnecting…" : "Connecting…");
  const token = authToken();
  const ws = token === ""
    ? new WebSocket(socketUrl(resume))
    : new WebSocket(socketUrl(resume), ["chat", `bearer.${token}`]);
  state.ws = ws;
  state.lastFrameAt = Date.now();
  // Handlers check `state.ws` so a stale socket can never act on the page.
  ws.addEventListener("message", (event) => {
    if (state.ws !== ws) return;
    state.lastFrameAt = Date.now();
    if (typeof event.data !== "string") return;
    // JSON never holds a raw newline, so each line is one frame.
    for (const line of event.data.split("\n")) {
      if (state.ws !== ws) return;
      onFrame(line, resume);
    }
  });
  ws.addEventListener("close", (event) => {
    if (state.ws !== ws) return;
    onClose(event.code, event.reason);
  });
  showPanels();
}

function send(frame) {
  const ws = state.ws;
  if (ws === null || ws.readyState !== WebSocket.OPEN || !state.welcomed) return false;
  ws.send(JSON.stringify(frame));
  return true;
}

function onFrame(data, resumed) {
  if (typeof data !== "string") return;
  let frame;
  try {
    frame = JSON.parse(data);
  } catch {
    return;
  }
  if (typeof frame !== "object" || frame === null) return;
  switch (frame.type) {
    case "welcome":
      return onWelcome(frame, resumed);
    case "joined":
      return onJoined(frame);
    case "history":
      // The rest of a long history, after a welcome or joined that said `more`.
      if (frame.room === state.room && Array.isArray(frame.history)) {
        for (const stored of frame.history) showRoomFrame(stored, false);
      }
      return;
    case "left":
      if (frame.room === state.room && state.pendingRoom === "") {
        renderNotice(`You are no longer in #${frame.room}.`, "warning");
      }
      return;
    case "message":
    case "system":
      return showRoomFrame(frame, true);
    case "private":
      return renderPrivate(frame);
    case "users":
      if (frame.room === state.room && Array.isArray(frame.users)) setUsers(frame.users);
      return;
    case "ping":
      send({ type: "pong" });
      return;
    case "heartbeat_ack":
      return;
    case "error":
      return onError(frame);
  }
}

function onWelcome(frame, resumed) {
  state.welcomed = true;
  state.everWelcomed = true;
  state.attempt = 0;
  state.lastReason = "";
  state.username = frame.username;
  state.room = frame.room;
  state.heartbeat = frame.heartbeat ?? null;
  if (typeof frame.limits?.max_message_bytes === "number") {
    state.maxMessageBytes = frame.limits.max_message_bytes;
  }
  setRoomInUrl(state.room);
  setUsers(Array.isArray(frame.users) ? frame.users : []);
  adoptEpoch(frame.epoch);
  showHistory(frame.room, frame.history ?? [], frame.recovered !== false, resumed);
  startHeartbeat();
  connectedStatus();
  showPanels();
}

function onJoined(frame) {
  if (frame.room !== state.pendingRoom) {
    // A resume of the current room: just the missed frames.
    if (frame.room !== state.room) return;
    adoptEpoch(frame.epoch);
    showHistory(frame.room, frame.history ?? [], frame.recovered !== false, true);
    return;
  }
  const old = state.room;
  state.pendingRoom = "";
  send({ type: "leave", room: old });
  state.room = frame.room;
  state.seen.delete(frame.room);
  adoptEpoch(frame.epoch);
  setPrivateTarget("");
  clearMessages();
  setRoomInUrl(state.room);
  setUsers(Array.isArray(frame.users) ? frame.users : []);
  showHistory(frame.room, frame.history ?? [], true, false);
  hideInlineForm(ui.switchForm, ui.switchButton);
  showPanels();
  ui.message.focus();
}

function onError(frame) {
  const text = typeof frame.message === "string" ? frame.message : "Unknown error";
  if ((frame.code === "name_taken" || frame.code === "invalid_name") && state.pendingRename) {
    state.pendingRename = "";
    ui.renameError.textContent = text;
    ui.renameInput.focus();
    return;
  }
  if (frame.code === "invalid_room" && state.pendingRoom !== "") {
    state.pendingRoom = "";
    ui.switchError.textContent = text;
    ui.switchInput.focus();
    return;
  }
  renderNotice(text, "error");
}

function renamed(name) {
  state.username = name;
  state.pendingRename = "";
  saveName(name);
  ui.username.value = name;
  hideInlineForm(ui.renameForm, ui.renameButton);
  connectedStatus();
  showPanels();
}

function onClose(code, reason) {
  state.ws = null;
  state.welcomed = false;
  clearTimers();
  const why = reason || CLOSE_REASONS.get(code) || `Closed with code ${code}`;
  // A name refused before any welcome is taken; on a reconnect it is most
  // likely our own previous socket that the server has not dropped yet.
  const final = FINAL_CODES.has(code) || (code === 4009 && !state.everWelcomed);
  if (final || !state.wanted) {
    state.wanted = false;
    setStatus("disconnected", `Disconnected: ${why}`);
    ui.joinError.textContent = why;
    showPanels();
    return;
  }
  state.lastReason = why;
  scheduleReconnect();
  showPanels();
}

function scheduleReconnect() {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** state.attempt);
  // Full jitter above the floor, so many clients dropped at once come back spread out.
  const delay = BACKOFF_MIN_MS + Math.random() * (ceiling - BACKOFF_MIN_MS);
  state.attempt++;
  state.reconnectAt = Date.now() + delay;
  state.reconnectTimer = setTimeout(() => openSocket(true), delay);
  state.countdownTimer = setInterval(reconnectingStatus, 1000);
  reconnectingStatus();
}

/** Reconnects at once when a reconnect is pending (tab visible again, network back). */
function reconnectNow() {
  if (!state.wanted || state.ws !== null) return;
  openSocket(true);
}

function startHeartbeat() {
  if (state.heartbeat === null) return;
  const { interval_ms: interval, timeout_ms: timeout } = state.heartbeat;
  state.heartbeatTimer = setInterval(() => {
    // No frame for a whole timeout (the server pings every interval): the link is dead
    // even if the browser has not noticed, so drop it and reconnect.
    if (Date.now() - state.lastFrameAt > timeout) {
      const ws = state.ws;
      // Detached first, so its own close event (maybe much later) is ignored.
      state.ws = null;
      ws?.close(4000, "Heartbeat timeout");
      onClose(4000, "No answer from the server");
      return;
    }
    send({ type: "heartbeat" });
  }, interval);
}

function clearTimers() {
  clearTimeout(state.reconnectTimer);
  clearInterval(state.countdownTimer);
  clearInterval(state.heartbeatTimer);
  state.reconnectTimer = undefined;
  state.countdownTimer = undefined;
  state.heartbeatTimer = undefined;
}

function disconnect() {
  state.wanted = false;
  clearTimers();
  const ws = state.ws;
  state.ws = null;
  state.welcomed = false;
  ws?.close(1000, "Bye");
  setStatus("disconnected", "Disconnected");
  setUsers([]);
  setPrivateTarget("");
  showPanels();
  ui.connect.focus();
}

// ---------------------------------------------------------------------------
// Forms

function hideInlineForm(form, toggle) {
  form.hidden = true;
  toggle.setAttribute("aria-expanded", "false");
  const error = form.querySelector(".error");
  if (error) error.textContent = "";
}

function showInlineForm(form, toggle, input, value) {
  hideInlineForm(
    form === ui.renameForm ? ui.switchForm : ui.renameForm,
    form === ui.renameForm ? ui.switchButton : ui.renameButton,
  );
  form.hidden = false;
  toggle.setAttribute("aria-expanded", "true");
  input.value = value;
  input.focus();
  input.select();
}

ui.joinForm.addEventListener("submit", (event) => {
  event.preventDefault();
  ui.joinError.textContent = "";
  const rawName = ui.username.value.trim();
  const name = rawName === "" ? "" : normalizeName(rawName);
  if (name === undefined) {
    ui.joinError.textContent =
      "Names are 1 to 32 letters, digits, spaces, _ - or . (leave empty to join anonymously).";
    ui.username.focus();
    return;
  }
  const room = normalizeName(ui.room.value);
  if (room === undefined) {
    ui.joinError.textContent = "Room names are 1 to 32 letters, digits, spaces, _ - or .";
    ui.room.focus();
    return;
  }
  if (name !== "") saveName(name);
  state.username = name;
  state.room = room;
  state.wanted = true;
  state.everWelcomed = false;
  state.attempt = 0;
  state.lastReason = "";
  state.seen.clear();
  clearMessages();
  setUsers([]);
  setPrivateTarget("");
  setRoomInUrl(room);
  openSocket(false);
  ui.message.focus();
});

ui.disconnect.addEventListener("click", disconnect);
ui.retryNow.addEventListener("click", reconnectNow);

ui.renameButton.addEventListener("click", () => {
  if (ui.renameForm.hidden) {
    showInlineForm(ui.renameForm, ui.renameButton, ui.renameInput, state.username);
  } else {
    hideInlineForm(ui.renameForm, ui.renameButton);
  }
});

ui.renameForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const name = normalizeName(ui.renameInput.value);
  if (name === undefined || sameName(name, "System")) {
    ui.renameError.textContent = "Names are 1 to 32 letters, digits, spaces, _ - or .";
    return;
  }
  if (name === state.username) {
    hideInlineForm(ui.renameForm, ui.renameButton);
    return;
  }
  ui.renameError.textContent = "";
  state.pendingRename = name;
  if (!send({ type: "rename", name })) ui.renameError.textContent = "Not connected.";
});

ui.switchButton.addEventListener("click", () => {
  if (ui.switchForm.hidden) {
    showInlineForm(ui.switchForm, ui.switchButton, ui.switchInput, "");
  } else {
    hideInlineForm(ui.switchForm, ui.switchButton);
  }
});

ui.switchForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const room = normalizeName(ui.switchInput.value);
  if (room === undefined) {
    ui.switchError.textContent = "Room names are 1 to 32 letters, digits, spaces, _ - or .";
    return;
  }
  if (room === state.room) {
    hideInlineForm(ui.switchForm, ui.switchButton);
    return;
  }
  ui.switchError.textContent = "";
  state.pendingRoom = room;
  if (!send({ type: "join", room })) {
    state.pendingRoom = "";
    ui.switchError.textContent = "Not connected.";
  }
});

for (const form of [ui.renameForm, ui.switchForm]) {
  const toggle = form === ui.renameForm ? ui.renameButton : ui.switchButton;
  form.querySelector(".cancel")?.addEventListener("click", () => {
    hideInlineForm(form, toggle);
    toggle.focus();
  });
  form.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    hideInlineForm(form, toggle);
    toggle.focus();
  });
}

ui.userList.addEventListener("click", (event) => {
  const target = event.target instanceof Element ? event.target.closest("button[data-user]") : null;
  if (target === null) return;
  const name = target.dataset.user ?? "";
  setPrivateTarget(sameName(name, state.privateTo) ? "" : name);
  ui.message.focus();
});

ui.privateCancel.addEventListener("click", () => {
  setPrivateTarget("");
  ui.message.focus();
});

function frameFor(text) {
  return state.privateTo === ""
    ? { type: "message", room: state.room, message: text }
    : { type: "private", to: state.privateTo, room: state.room, message: text };
}

function checkSize() {
  const bytes = encoder.encode(JSON.stringify(frameFor(ui.message.value))).length;
  const over = bytes > state.maxMessageBytes;
  ui.message.setAttribute("aria-invalid", String(over));
  ui.composerError.textContent = over
    ? `Message too long: ${bytes} of at most ${state.maxMessageBytes} bytes.`
    : "";
  return !over;
}

ui.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = ui.message.value;
  if (text.trim() === "") return;
  if (!checkSize()) return;
  if (!send(frameFor(text))) {
    ui.composerError.textContent = "Not connected; the message was not sent.";
    return;
  }
  ui.message.value = "";
  ui.composerError.textContent = "";
  ui.message.focus();
});

ui.message.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    ui.composer.requestSubmit();
  } else if (event.key === "Escape" && state.privateTo !== "") {
    setPrivateTarget("");
  }
});

ui.message.addEventListener("input", () => {
  // Encode only once the text could be near the limit: a UTF-16 unit is at most 3 bytes.
  if (ui.message.value.length * 3 > state.maxMessageBytes || ui.composerError.textContent) {
    checkSize();
  }
});

ui.messages.addEventListener("scroll", () => {
  if (isAtBottom()) ui.newMessages.hidden = true;
});

ui.newMessages.addEventListener("click", () => {
  scrollToBottom();
  ui.message.focus();
});

document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") reconnectNow();
});
addEventListener("online", reconnectNow);

// ---------------------------------------------------------------------------
// Start

{
  const room = normalizeName(new URL(location.href).searchParams.get("room") ?? "");
  if (room !== undefined) ui.room.value = room;
  ui.username.value = loadName();
  setStatus("disconnected", "Disconnected");
  setUsers([]);
  showPanels();
  ui.username.focus();
}
