/**
 * A minimal Chrome DevTools Protocol session with a server started with
 * `--inspect`: enough to force a garbage collection, read the heap and take
 * a CPU profile of just the measured window.
 *
 * @module
 */

/** An open DevTools session. */
export interface InspectorSession extends AsyncDisposable {
  /** Sends a command and resolves with its result. */
  call(method: string, params?: Record<string, unknown>): Promise<Record<string, unknown>>;
}

/** Connects to the first inspector target listening on 127.0.0.1:`port`. */
export async function connectInspector(port: number): Promise<InspectorSession> {
  const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json() as {
    webSocketDebuggerUrl: string;
  }[];
  const url = targets[0]?.webSocketDebuggerUrl;
  if (url === undefined) throw new Error(`No inspector target: ${port}`);
  const ws = new WebSocket(url);
  const replies = new Map<number, PromiseWithResolvers<Record<string, unknown>>>();
  ws.onmessage = (event) => {
    const reply = JSON.parse(event.data as string) as {
      id?: number;
      result?: Record<string, unknown>;
      error?: { message?: string };
    };
    if (reply.id === undefined) return;
    const waiting = replies.get(reply.id);
    replies.delete(reply.id);
    if (reply.error !== undefined) {
      waiting?.reject(new Error(`Inspector error: ${reply.error.message}`));
    } else {
      waiting?.resolve(reply.result ?? {});
    }
  };
  const closed = new Promise<void>((resolve) => {
    ws.onclose = () => {
      for (const waiting of replies.values()) waiting.reject(new Error("Inspector closed"));
      replies.clear();
      resolve();
    };
  });
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onerror = () => reject(new Error(`Inspector unreachable: ${url}`));
  });
  let next = 0;
  return {
    call(method, params = {}) {
      const id = ++next;
      const waiting = Promise.withResolvers<Record<string, unknown>>();
      replies.set(id, waiting);
      ws.send(JSON.stringify({ id, method, params }));
      return waiting.promise;
    },
    async [Symbol.asyncDispose]() {
      ws.close();
      await closed;
    },
  };
}
