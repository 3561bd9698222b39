/**
 * The benchmark's baseline: the minimal Deno broadcast. Every frame a socket
 * sends goes, unchanged, to every open socket of its room (the `room` query
 * parameter; one Set of sockets per room). No parsing, no history: the
 * runtime's own limit for a chat server's job.
 *
 * With `?batch=1` a socket gets the frames of one turn of the event loop as
 * one frame, a line each, flushed in a microtask: the same framing as our
 * server's `?batch=1`, so that `deno task bench --batched-baseline` can show
 * the runtime's limit for batched frames too.
 *
 * ```sh
 * PORT=0 deno run --allow-net --allow-env bench/baseline_server.ts
 * ```
 *
 * Logs `{"event":"listening","port":N}` on stderr, like `main.ts`.
 *
 * @module
 */

/** Options of {@linkcode serveBaseline}. */
export interface BaselineOptions {
  /** Port on 127.0.0.1; 0 picks a free one. Default 0. */
  port?: number;
  /** Called once the server listens. Default: nothing. */
  onListen?: (addr: Deno.NetAddr) => void;
}

/** Serves the minimal broadcast until the returned server is shut down. */
export function serveBaseline(options: BaselineOptions = {}): Deno.HttpServer<Deno.NetAddr> {
  const rooms = new Map<string, Set<WebSocket>>();
  // Batching sockets' pending frames, and the sockets that have some.
  const pending = new Map<WebSocket, string[]>();
  let dirty: WebSocket[] = [];
  const flush = () => {
    const sockets = dirty;
    dirty = [];
    for (const s of sockets) {
      const out = pending.get(s);
      if (out === undefined || out.length === 0) continue;
      const text = out.join("\n");
      out.length = 0;
      if (s.readyState === WebSocket.OPEN) s.send(text);
    }
  };
  const send = (s: WebSocket, text: string) => {
    const out = pending.get(s);
    if (out === undefined) {
      s.send(text);
      return;
    }
    if (out.length === 0 && dirty.push(s) === 1) queueMicrotask(flush);
    out.push(text);
  };
  return Deno.serve({
    hostname: "127.0.0.1",
    port: options.port ?? 0,
    onListen: options.onListen ?? (() => {}),
  }, (req) => {
    if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return new Response("baseline\n");
    }
    const params = new URL(req.url).searchParams;
    const room = params.get("room") ?? "";
    let sockets = rooms.get(room);
    if (sockets === undefined) rooms.set(room, sockets = new Set());
    const { socket, response } = Deno.upgradeWebSocket(req);
    if (params.get("batch") === "1") pending.set(socket, []);
    socket.onopen = () => sockets.add(socket);
    socket.onmessage = (event) => {
      // One check per message keeps the plain loop as minimal as it was.
      if (pending.size === 0) {
        for (const s of sockets) if (s.readyState === WebSocket.OPEN) s.send(event.data);
      } else {
        for (const s of sockets) if (s.readyState === WebSocket.OPEN) send(s, event.data);
      }
    };
    socket.onclose = () => {
      sockets.delete(socket);
      pending.delete(socket);
    };
    socket.onerror = () => {};
    return response;
  });
}

if (import.meta.main) {
  const port = Number(Deno.env.get("PORT") ?? "0");
  serveBaseline({
    port,
    onListen: ({ port }) => console.error(JSON.stringify({ event: "listening", port })),
  });
  // Exit through Deno.exit so --cpu-prof writes its profile.
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => Deno.exit(0));
  }
}
