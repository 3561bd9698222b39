/**
 * A minimal Chrome DevTools Protocol client for browser tests: one WebSocket
 * to the browser, flattened sessions per page, and page helpers that drive
 * the page through real input events.
 *
 * @module
 */

import { eventually } from "./eventually.ts";

/** A JSON object as sent and received over CDP. */
export type CdpParams = Record<string, unknown>;

/** Handles a CDP event; `sessionId` is undefined for browser-level events. */
export type CdpEventHandler = (params: CdpParams, sessionId: string | undefined) => void;

/** Options for {@linkcode CdpConnection.connect}. */
export interface CdpConnectOptions {
  /**
   * How long to wait for the WebSocket to open, in milliseconds.
   *
   * @default {5000}
   */
  timeoutMs?: number;
  /**
   * How long any command may wait for its response, in milliseconds.
   *
   * @default {30000}
   */
  commandTimeoutMs?: number;
}

interface PendingCommand {
  method: string;
  resolve: (result: CdpParams) => void;
  reject: (error: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

interface CdpMessage {
  id?: number;
  method?: string;
  params?: CdpParams;
  result?: CdpParams;
  error?: { message?: string; data?: string };
  sessionId?: string;
}

/** A CDP connection to the browser endpoint over the built-in WebSocket client. */
export class CdpConnection implements AsyncDisposable {
  #ws: WebSocket;
  #commandTimeoutMs: number;
  #nextId = 1;
  #pending = new Map<number, PendingCommand>();
  #handlers = new Map<string, Set<CdpEventHandler>>();
  #opened: Promise<void>;
  #closed: Promise<void>;
  #isClosed = false;

  private constructor(url: string, commandTimeoutMs: number) {
    this.#commandTimeoutMs = commandTimeoutMs;
    this.#ws = new WebSocket(url);
    this.#opened = new Promise((resolve, reject) => {
      this.#ws.addEventListener("open", () => resolve(), { once: true });
      this.#ws.addEventListener(
        "error",
        () => reject(new Error(`Cannot connect to DevTools: ${url}`)),
        { once: true },
      );
    });
    // The open promise may be abandoned on timeout; its rejection is reported by connect.
    this.#opened.catch(() => {});
    this.#closed = new Promise((resolve) => {
      this.#ws.addEventListener("close", () => {
        this.#isClosed = true;
        for (const command of this.#pending.values()) {
          clearTimeout(command.timer);
          command.reject(
            new Error(`CDP connection closed before a response to: ${command.method}`),
          );
        }
        this.#pending.clear();
        resolve();
      }, { once: true });
    });
    this.#ws.addEventListener("message", (event) => this.#onMessage(event));
  }

  /** Opens a connection to a DevTools WebSocket URL such as `ws://127.0.0.1:9222/devtools/browser/…`. */
  static async connect(url: string, options: CdpConnectOptions = {}): Promise<CdpConnection> {
    const { timeoutMs = 5000, commandTimeoutMs = 30_000 } = options;
    const connection = new CdpConnection(url, commandTimeoutMs);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`Timed out connecting to DevTools: ${url}`)),
        timeoutMs,
      );
    });
    try {
      await Promise.race([connection.#opened, timeout]);
    } catch (error) {
      await connection.close();
      throw error;
    } finally {
      clearTimeout(timer);
    }
    return connection;
  }

  /** Whether the WebSocket has closed; every later command rejects. */
  get isClosed(): boolean {
    return this.#isClosed;
  }

  /** Settles once the WebSocket has closed, from either side. */
  get closed(): Promise<void> {
    return this.#closed;
  }

  /**
   * Sends a command and resolves with its result; rejects with the CDP error
   * message, on timeout, or when the connection closes first.
   */
  send<T = CdpParams>(method: string, params: CdpParams = {}, sessionId?: string): Promise<T> {
    if (this.#isClosed || this.#ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new Error(`CDP connection is closed: ${method}`));
    }
    const id = this.#nextId++;
    const message: CdpMessage = sessionId === undefined
      ? { id, method, params }
      : { id, method, params, sessionId };
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`CDP command timed out after ${this.#commandTimeoutMs} ms: ${method}`));
      }, this.#commandTimeoutMs);
      this.#pending.set(id, {
        method,
        resolve: (result) => resolve(result as T),
        reject,
        timer,
      });
      this.#ws.send(JSON.stringify(message));
    });
  }

  /** Subscribes to an event from any session; returns the unsubscribe function. */
  on(method: string, handler: CdpEventHandler): () => void {
    let handlers = this.#handlers.get(method);
    if (handlers === undefined) {
      handlers = new Set();
      this.#handlers.set(method, handlers);
    }
    handlers.add(handler);
    return () => {
      handlers.delete(handler);
      if (handlers.size === 0 && this.#handlers.get(method) === handlers) {
        this.#handlers.delete(method);
      }
    };
  }

  /** Closes the WebSocket and waits for it to be closed. */
  async close(): Promise<void> {
    if (this.#ws.readyState !== WebSocket.CLOSED && this.#ws.readyState !== WebSocket.CLOSING) {
      this.#ws.close();
    }
    await this.#closed;
  }

  /** Same as {@linkcode CdpConnection.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #onMessage(event: MessageEvent): void {
    if (typeof event.data !== "string") return;
    const message = JSON.parse(event.data) as CdpMessage;
    if (typeof message.id === "number") {
      const command = this.#pending.get(message.id);
      if (command === undefined) return;
      this.#pending.delete(message.id);
      clearTimeout(command.timer);
      if (message.error !== undefined) {
        const { message: text = "Unknown error", data } = message.error;
        const detail = data === undefined ? text : `${text} (${data})`;
        command.reject(new Error(`CDP command ${command.method} failed: ${detail}`));
      } else {
        command.resolve(message.result ?? {});
      }
      return;
    }
    if (typeof message.method !== "string") return;
    const handlers = this.#handlers.get(message.method);
    if (handlers === undefined) return;
    for (const handler of [...handlers]) {
      // One failing handler must not starve the others, yet must still fail the test.
      try {
        handler(message.params ?? {}, message.sessionId);
      } catch (error) {
        reportError(error);
      }
    }
  }
}

/** Options for {@linkcode CdpSession.waitForEvent}. */
export interface WaitForEventOptions {
  /**
   * How long to wait, in milliseconds.
   *
   * @default {10000}
   */
  timeoutMs?: number;
  /** Stops waiting, rejecting with the signal's reason. */
  signal?: AbortSignal;
}

/** A flattened CDP session attached to one target, sharing the browser connection. */
export class CdpSession {
  /** The browser connection carrying this session. */
  readonly connection: CdpConnection;
  /** The id from `Target.attachToTarget`. */
  readonly sessionId: string;

  /** Wraps an already attached session. */
  constructor(connection: CdpConnection, sessionId: string) {
    this.connection = connection;
    this.sessionId = sessionId;
  }

  /** Sends a command to the attached target. */
  send<T = CdpParams>(method: string, params: CdpParams = {}): Promise<T> {
    return this.connection.send<T>(method, params, this.sessionId);
  }

  /** Subscribes to an event of this session only; returns the unsubscribe function. */
  on(method: string, handler: (params: CdpParams) => void): () => void {
    return this.connection.on(method, (params, sessionId) => {
      if (sessionId === this.sessionId) handler(params);
    });
  }

  /** Resolves with the params of the next such event of this session. */
  waitForEvent<T = CdpParams>(method: string, options: WaitForEventOptions = {}): Promise<T> {
    const { timeoutMs = 10_000, signal } = options;
    return new Promise<T>((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const cleanup = () => {
        clearTimeout(timer);
        off();
        signal?.removeEventListener("abort", onAbort);
      };
      const onAbort = () => {
        cleanup();
        reject(signal?.reason);
      };
      const off = this.on(method, (params) => {
        cleanup();
        resolve(params as T);
      });
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`Timed out after ${timeoutMs} ms waiting for CDP event: ${method}`));
      }, timeoutMs);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }
}

/** Options for {@linkcode Page.open}. */
export interface PageOptions {
  /** Viewport width in CSS pixels; the viewport is only overridden when width or height is given. */
  width?: number;
  /** Viewport height in CSS pixels. */
  height?: number;
  /**
   * Opens the page as another tab of this page's browser context (one
   * browser: shared localStorage and cookies); closing it closes the tab only.
   */
  tabOf?: Page;
}

/** Options for {@linkcode Page.goto}. */
export interface GotoOptions {
  /**
   * How long to wait for the load event, in milliseconds.
   *
   * @default {10000}
   */
  timeoutMs?: number;
}

/** Options for {@linkcode Page.waitFor}. */
export interface WaitForOptions {
  /**
   * How long to poll before rejecting, in milliseconds.
   *
   * @default {5000}
   */
  timeoutMs?: number;
  /**
   * Pause between two polls, in milliseconds.
   *
   * @default {50}
   */
  intervalMs?: number;
}

/** Options for {@linkcode Page.press}. */
export interface PressOptions {
  /** Focuses the first element matching this selector first; otherwise the key goes to the focused element. */
  selector?: string;
}

/** A JavaScript dialog the page opened (and that was dismissed). */
export interface DialogRecord {
  /** `alert`, `confirm`, `prompt` or `beforeunload`. */
  type: string;
  /** The text the page passed to the dialog. */
  message: string;
}

/** Default viewport size when only one dimension is given. */
const DEFAULT_VIEWPORT = { width: 1280, height: 720 };

interface RemoteObject {
  type?: string;
  value?: unknown;
  unserializableValue?: string;
  description?: string;
}

interface ExceptionDetails {
  text?: string;
  exception?: RemoteObject;
}

interface KeyDefinition {
  key: string;
  code: string;
  keyCode: number;
  /** Text inserted by the key; keys without it send no `char` event. */
  text?: string;
  modifiers?: number;
}

const SHIFT_MODIFIER = 8;

const SPECIAL_KEYS = new Map<string, KeyDefinition>([
  ["Enter", { key: "Enter", code: "Enter", keyCode: 13, text: "\r" }],
  ["Tab", { key: "Tab", code: "Tab", keyCode: 9 }],
  ["Backspace", { key: "Backspace", code: "Backspace", keyCode: 8 }],
  ["Delete", { key: "Delete", code: "Delete", keyCode: 46 }],
  ["Escape", { key: "Escape", code: "Escape", keyCode: 27 }],
  ["ArrowLeft", { key: "ArrowLeft", code: "ArrowLeft", keyCode: 37 }],
  ["ArrowUp", { key: "ArrowUp", code: "ArrowUp", keyCode: 38 }],
  ["ArrowRight", { key: "ArrowRight", code: "ArrowRight", keyCode: 39 }],
  ["ArrowDown", { key: "ArrowDown", code: "ArrowDown", keyCode: 40 }],
  ["Home", { key: "Home", code: "Home", keyCode: 36 }],
  ["End", { key: "End", code: "End", keyCode: 35 }],
  ["PageUp", { key: "PageUp", code: "PageUp", keyCode: 33 }],
  ["PageDown", { key: "PageDown", code: "PageDown", keyCode: 34 }],
]);

function keyDefinition(key: string): KeyDefinition {
  const special = SPECIAL_KEYS.get(key === "\n" || key === "\r" ? "Enter" : key);
  if (special !== undefined) return special;
  if ([...key].length !== 1) throw new RangeError(`Unknown key: ${key}`);
  if (/^[a-z]$/i.test(key)) {
    const upper = key.toUpperCase();
    return {
      key,
      code: `Key${upper}`,
      keyCode: upper.charCodeAt(0),
      text: key,
      modifiers: key === upper ? SHIFT_MODIFIER : 0,
    };
  }
  if (/^[0-9]$/.test(key)) {
    return { key, code: `Digit${key}`, keyCode: key.charCodeAt(0), text: key };
  }
  if (key === " ") return { key, code: "Space", keyCode: 32, text: key };
  // Punctuation and non-ASCII have no layout-independent key code; the text is what matters.
  return { key, code: "", keyCode: 0, text: key };
}

function formatRemoteObject(object: RemoteObject | undefined): string | undefined {
  if (object === undefined) return undefined;
  if (object.type === "string" && typeof object.value === "string") return object.value;
  if (object.description !== undefined) return object.description;
  if (object.unserializableValue !== undefined) return object.unserializableValue;
  if (object.type === "undefined") return "undefined";
  return JSON.stringify(object.value);
}

function describeException(details: ExceptionDetails): string {
  return formatRemoteObject(details.exception) ?? details.text ?? "Unknown exception";
}

function decodeBase64(data: string): Uint8Array {
  const binary = atob(data);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

function validateDimension(name: string, value: number | undefined): void {
  if (value !== undefined && !(Number.isInteger(value) && value > 0)) {
    throw new RangeError(`Invalid viewport ${name}: ${value}`);
  }
}

/**
 * A page in its own browser context, so two pages behave like two users with
 * separate cookies and storage.
 */
export class Page implements AsyncDisposable {
  /** The session attached to this page's target. */
  readonly session: CdpSession;
  /** The page's target id. */
  readonly targetId: string;
  /** The isolated browser context holding the page. */
  readonly browserContextId: string;
  /** Every JavaScript dialog the page opened; each was dismissed automatically. */
  readonly dialogs: DialogRecord[] = [];
  /** Uncaught exceptions and `console.error` output of the page, in order. */
  readonly consoleErrors: string[] = [];
  #unsubscribes: Array<() => void>;
  #dialogReplies = new Set<Promise<void>>();
  #closing: Promise<void> | undefined;
  #ownsContext = true;

  private constructor(session: CdpSession, targetId: string, browserContextId: string) {
    this.session = session;
    this.targetId = targetId;
    this.browserContextId = browserContextId;
    this.#unsubscribes = [
      session.on("Page.javascriptDialogOpening", (params) => this.#onDialog(params)),
      session.on("Runtime.exceptionThrown", (params) => {
        const details = params.exceptionDetails as ExceptionDetails | undefined;
        this.consoleErrors.push(details ? describeException(details) : "Unknown exception");
      }),
      session.on("Runtime.consoleAPICalled", (params) => {
        if (params.type !== "error") return;
        const args = (params.args ?? []) as RemoteObject[];
        this.consoleErrors.push(args.map((arg) => formatRemoteObject(arg) ?? "").join(" "));
      }),
    ];
  }

  /**
   * Creates a browser context and a blank page in it, attaches to it, enables
   * the Page and Runtime domains and sets the viewport when a size is given.
   */
  static async open(connection: CdpConnection, options: PageOptions = {}): Promise<Page> {
    const { width, height, tabOf } = options;
    validateDimension("width", width);
    validateDimension("height", height);
    const { browserContextId } = tabOf ?? await connection.send<{ browserContextId: string }>(
      "Target.createBrowserContext",
      // Lets chromium drop the context by itself if the connection dies mid-test.
      { disposeOnDetach: true },
    );
    let page: Page | undefined;
    try {
      const { targetId } = await connection.send<{ targetId: string }>("Target.createTarget", {
        url: "about:blank",
        browserContextId,
      });
      const { sessionId } = await connection.send<{ sessionId: string }>(
        "Target.attachToTarget",
        { targetId, flatten: true },
      );
      page = new Page(new CdpSession(connection, sessionId), targetId, browserContextId);
      page.#ownsContext = tabOf === undefined;
      await page.session.send("Page.enable");
      await page.session.send("Runtime.enable");
      if (width !== undefined || height !== undefined) {
        await page.session.send("Emulation.setDeviceMetricsOverride", {
          width: width ?? DEFAULT_VIEWPORT.width,
          height: height ?? DEFAULT_VIEWPORT.height,
          deviceScaleFactor: 1,
          mobile: false,
        });
      }
      return page;
    } catch (error) {
      if (page !== undefined) {
        await page.close().catch(() => {});
      } else {
        await connection.send("Target.disposeBrowserContext", { browserContextId })
          .catch(() => {});
      }
      throw error;
    }
  }

  /** Navigates to `url` and waits for the page's load event. */
  async goto(url: string, options: GotoOptions = {}): Promise<void> {
    const { timeoutMs = 10_000 } = options;
    const abort = new AbortController();
    // Subscribe before navigating: a small page can finish loading before the reply arrives.
    const loaded = this.session.waitForEvent("Page.loadEventFired", {
      timeoutMs,
      signal: abort.signal,
    });
    let result: { loaderId?: string; errorText?: string };
    try {
      result = await this.session.send("Page.navigate", { url });
    } catch (error) {
      abort.abort();
      await loaded.catch(() => {});
      throw error;
    }
    if (result.errorText || result.loaderId === undefined) {
      abort.abort();
      await loaded.catch(() => {});
      if (result.errorText) throw new Error(`Cannot navigate to ${url}: ${result.errorText}`);
      // Same-document navigations (only the hash changed) fire no load event.
      return;
    }
    await loaded;
  }

  /**
   * Evaluates a JavaScript expression in the page, awaiting a returned promise,
   * and resolves with its JSON-serialisable value; rethrows page exceptions.
   */
  async evaluate<T = unknown>(expression: string): Promise<T> {
    const { result, exceptionDetails } = await this.session.send<{
      result?: RemoteObject;
      exceptionDetails?: ExceptionDetails;
    }>("Runtime.evaluate", { expression, returnByValue: true, awaitPromise: true });
    if (exceptionDetails !== undefined) {
      throw new Error(`Evaluation threw: ${describeException(exceptionDetails)}`);
    }
    return result?.value as T;
  }

  /**
   * Polls until the JavaScript expression is truthy, with
   * {@linkcode eventually}; rejects with the expression (and the last
   * exception) in the message on timeout. Exceptions count as not yet.
   */
  async waitFor(expression: string, options: WaitForOptions = {}): Promise<void> {
    const { timeoutMs = 5000, intervalMs = 50 } = options;
    let lastError: unknown;
    const holds = async () => {
      try {
        // The newline keeps a trailing line comment from swallowing the parenthesis.
        return await this.evaluate<boolean>(`Boolean(${expression}\n)`);
      } catch (error) {
        lastError = error;
        return false;
      }
    };
    try {
      await eventually(expression, holds, { timeoutMs, intervalMs });
    } catch (error) {
      // The first line is enough; the rest is a stack trace into the evaluated snippet.
      const reason = lastError instanceof Error
        ? ` (last error: ${lastError.message.split("\n")[0]})`
        : "";
      throw new Error(`${(error as Error).message}${reason}`);
    }
  }

  /**
   * Focuses the first element matching `selector`, puts the caret at the end
   * and types `text` one key at a time (keyDown, char, keyUp per character).
   */
  async type(selector: string, text: string): Promise<void> {
    await this.#focus(selector);
    for (const char of text) await this.#dispatchKey(keyDefinition(char));
  }

  /**
   * Presses one key, e.g. `"Enter"`, `"Tab"`, `"Backspace"` or a single
   * character, on the focused element.
   */
  async press(key: string, options: PressOptions = {}): Promise<void> {
    const definition = keyDefinition(key);
    if (options.selector !== undefined) await this.#focus(options.selector);
    await this.#dispatchKey(definition);
  }

  /** Scrolls the first element matching `selector` into view and clicks its centre with the mouse. */
  async click(selector: string): Promise<void> {
    const box = await this.evaluate<{ x: number; y: number; width: number; height: number } | null>(
      `(() => {
        const element = document.querySelector(${JSON.stringify(selector)});
        if (element === null) return null;
        element.scrollIntoView({ block: "center", inline: "center", behavior: "instant" });
        const rect = element.getBoundingClientRect();
        return { x: rect.x + rect.width / 2, y: rect.y + rect.height / 2, width: rect.width, height: rect.height };
      })()`,
    );
    if (box === null) throw new Error(`No element matches selector: ${selector}`);
    if (box.width === 0 || box.height === 0) {
      throw new Error(`Element has no size to click: ${selector}`);
    }
    const { x, y } = box;
    await this.session.send("Input.dispatchMouseEvent", { type: "mouseMoved", x, y });
    await this.session.send("Input.dispatchMouseEvent", {
      type: "mousePressed",
      x,
      y,
      button: "left",
      buttons: 1,
      clickCount: 1,
    });
    await this.session.send("Input.dispatchMouseEvent", {
      type: "mouseReleased",
      x,
      y,
      button: "left",
      buttons: 0,
      clickCount: 1,
    });
  }

  /** Writes a PNG screenshot of the viewport to `path`. */
  async screenshot(path: string | URL): Promise<void> {
    const { data } = await this.session.send<{ data: string }>("Page.captureScreenshot", {
      format: "png",
    });
    await Deno.writeFile(path, decodeBase64(data));
  }

  /** Closes the page by disposing its browser context; safe to call twice. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      for (const unsubscribe of this.#unsubscribes) unsubscribe();
      await Promise.all(this.#dialogReplies);
      const { connection } = this.session;
      // Once the browser is gone so is the context; nothing is left to dispose.
      if (connection.isClosed) return;
      if (!this.#ownsContext) {
        await connection.send("Target.closeTarget", { targetId: this.targetId });
        return;
      }
      await connection.send("Target.disposeBrowserContext", {
        browserContextId: this.browserContextId,
      });
    })();
    return this.#closing;
  }

  /** Same as {@linkcode Page.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #onDialog(params: CdpParams): void {
    const type = String(params.type ?? "");
    this.dialogs.push({ type, message: String(params.message ?? "") });
    // Dismiss so the page never blocks; but accept beforeunload, or navigation would stall.
    const reply = this.session
      .send("Page.handleJavaScriptDialog", { accept: type === "beforeunload" })
      .then(() => {}, () => {})
      .finally(() => this.#dialogReplies.delete(reply));
    this.#dialogReplies.add(reply);
  }

  async #focus(selector: string): Promise<void> {
    const state = await this.evaluate<"missing" | "unfocusable" | "focused">(`(() => {
      const element = document.querySelector(${JSON.stringify(selector)});
      if (element === null) return "missing";
      element.focus();
      if (typeof element.setSelectionRange === "function" && typeof element.value === "string") {
        // Some input types (email, number) refuse selections; the caret then stays put.
        try { element.setSelectionRange(element.value.length, element.value.length); } catch {}
      }
      return document.activeElement === element ? "focused" : "unfocusable";
    })()`);
    if (state === "missing") throw new Error(`No element matches selector: ${selector}`);
    if (state === "unfocusable") throw new Error(`Element cannot take focus: ${selector}`);
  }

  async #dispatchKey(definition: KeyDefinition): Promise<void> {
    const base = {
      key: definition.key,
      code: definition.code,
      windowsVirtualKeyCode: definition.keyCode,
      nativeVirtualKeyCode: definition.keyCode,
      modifiers: definition.modifiers ?? 0,
    };
    // rawKeyDown + char (rather than keyDown with text) so the text is inserted exactly once.
    await this.session.send("Input.dispatchKeyEvent", { type: "rawKeyDown", ...base });
    if (definition.text !== undefined) {
      await this.session.send("Input.dispatchKeyEvent", {
        type: "char",
        ...base,
        text: definition.text,
        unmodifiedText: definition.text,
      });
    }
    await this.session.send("Input.dispatchKeyEvent", { type: "keyUp", ...base });
  }
}
