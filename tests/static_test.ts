import assert from "node:assert/strict";
import { fileURLToPath, pathToFileURL } from "node:url";
import { createRouter } from "../app.ts";
import { createApp, loadConfig } from "../main.ts";
import { createStaticRoutes } from "../routes/static_routes.ts";

/** A real server on an ephemeral loopback port. */
async function startServer() {
  const app = await createApp(loadConfig({ PORT: "0", HOST: "127.0.0.1", CHAT_ENGINE: "memory" }));
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, app.handler);
  return {
    port: server.addr.port,
    http: `http://127.0.0.1:${server.addr.port}`,
    async [Symbol.asyncDispose]() {
      await app[Symbol.asyncDispose]();
      await server.shutdown();
      await server.finished;
    },
  };
}

/**
 * The static routes alone on a temporary root holding files the guard must
 * refuse (dot-files) beside one it must serve; removed on dispose.
 */
async function startStaticServer() {
  const dir = await Deno.makeTempDir({ prefix: "chat_static_" });
  await Deno.writeTextFile(`${dir}/visible.txt`, "visible");
  await Deno.writeTextFile(`${dir}/.hidden`, "SECRET hidden");
  await Deno.writeTextFile(`${dir}/.env`, "SECRET env");
  await Deno.mkdir(`${dir}/.git`);
  await Deno.writeTextFile(`${dir}/.git/config`, "SECRET git");
  await Deno.mkdir(`${dir}/sub`);
  await Deno.writeTextFile(`${dir}/sub/.hidden`, "SECRET nested");
  const root = pathToFileURL(`${dir}/`);
  const handler = createRouter(createStaticRoutes({ root }));
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, handler);
  return {
    dir,
    port: server.addr.port,
    http: `http://127.0.0.1:${server.addr.port}`,
    async [Symbol.asyncDispose]() {
      await server.shutdown();
      await server.finished;
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** Status code and body of a request written byte for byte, so no client normalises the path. */
async function rawGet(port: number, target: string): Promise<{ status: number; body: string }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const request =
      `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`;
    await conn.write(new TextEncoder().encode(request));
    const chunks: Uint8Array<ArrayBuffer>[] = [];
    const buffer = new Uint8Array(16 * 1024);
    for (;;) {
      const n = await conn.read(buffer);
      if (n === null) break;
      chunks.push(buffer.slice(0, n));
    }
    const text = new TextDecoder().decode(await new Blob(chunks).arrayBuffer());
    const status = Number(text.match(/^HTTP\/1\.1 (\d{3})/)?.[1]);
    return { status, body: text.slice(text.indexOf("\r\n\r\n") + 4) };
  } finally {
    conn.close();
  }
}

const mainSource = await Deno.readTextFile(new URL("../main.ts", import.meta.url));
const indexSource = await Deno.readTextFile(new URL("../static/index.html", import.meta.url));

/** The ETag static_routes gives a file: the first 12 bytes of its SHA-256 in base64, quoted. */
async function expectedEtag(file: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", file));
  return `"${btoa(String.fromCharCode(...digest.subarray(0, 12)))}"`;
}

/** Names carry no content hash, so every page and asset is revalidated on each use. */
const CACHE_POLICY = "no-cache";

function assertSecurityHeaders(headers: Headers): void {
  assert.match(headers.get("content-security-policy") ?? "", /default-src 'self'/);
  assert.match(headers.get("content-security-policy") ?? "", /frame-ancestors 'none'/);
  assert.equal(headers.get("x-content-type-options"), "nosniff");
  assert.equal(headers.get("x-frame-options"), "DENY");
  assert.equal(headers.get("referrer-policy"), "no-referrer");
}

Deno.test("the chat page is served at / and /chat with security headers", async (t) => {
  await using s = await startServer();
  for (const path of ["/", "/chat"]) {
    await t.step(path, async () => {
      const res = await fetch(`${s.http}${path}`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("content-type"), "text/html; charset=utf-8");
      assert.equal(
        res.headers.get("etag"),
        await expectedEtag(new TextEncoder().encode(indexSource)),
      );
      assert.equal(res.headers.get("cache-control"), CACHE_POLICY);
      assertSecurityHeaders(res.headers);
      assert.equal(await res.text(), indexSource);
    });
  }
});

Deno.test("static files carry their Content-Type, ETag and Cache-Control", async (t) => {
  await using s = await startServer();
  const cases: [string, string][] = [
    ["/static/client.js", "text/javascript; charset=utf-8"],
    ["/static/style.css", "text/css; charset=utf-8"],
    ["/static/index.html", "text/html; charset=utf-8"],
  ];
  for (const [path, type] of cases) {
    await t.step(path, async () => {
      const res = await fetch(`${s.http}${path}`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("content-type"), type);
      assert.equal(res.headers.get("x-content-type-options"), "nosniff");
      assert.equal(res.headers.get("cache-control"), CACHE_POLICY);
      const file = await Deno.readFile(new URL(`..${path}`, import.meta.url));
      assert.equal(res.headers.get("etag"), await expectedEtag(file));
      assert.deepEqual(new Uint8Array(await res.arrayBuffer()), file);
    });
  }
});

Deno.test("an If-None-Match with the ETag is answered 304 without a body", async (t) => {
  await using s = await startServer();
  const first = await fetch(`${s.http}/static/client.js`);
  await first.body?.cancel();
  const etag = first.headers.get("etag");
  const file = await Deno.readFile(new URL("../static/client.js", import.meta.url));
  assert.equal(etag, await expectedEtag(file));
  await t.step("matching tag", async () => {
    const res = await fetch(`${s.http}/static/client.js`, { headers: { "if-none-match": etag } });
    assert.equal(res.status, 304);
    assert.equal(res.headers.get("etag"), etag);
    assert.equal(res.headers.get("cache-control"), CACHE_POLICY);
    assert.equal(await res.text(), "");
  });
  await t.step("tag in a list", async () => {
    const res = await fetch(`${s.http}/static/client.js`, {
      headers: { "if-none-match": `"other", ${etag}` },
    });
    assert.equal(res.status, 304);
    await res.body?.cancel();
  });
  await t.step("another file's tag", async () => {
    const css = await fetch(`${s.http}/static/style.css`);
    await css.body?.cancel();
    const res = await fetch(`${s.http}/static/client.js`, {
      headers: { "if-none-match": css.headers.get("etag") ?? "" },
    });
    assert.equal(res.status, 200);
    await res.body?.cancel();
  });
});

Deno.test("HEAD answers the headers of GET without a body", async () => {
  await using s = await startServer();
  const get = await fetch(`${s.http}/static/style.css`);
  const size = (await get.arrayBuffer()).byteLength;
  const head = await fetch(`${s.http}/static/style.css`, { method: "HEAD" });
  assert.equal(head.status, 200);
  assert.equal(head.headers.get("content-type"), get.headers.get("content-type"));
  assert.equal(head.headers.get("etag"), get.headers.get("etag"));
  assert.equal(head.headers.get("content-length"), String(size));
  assert.equal(await head.text(), "");
});

// Absolute paths of files that exist: a guard that only refuses ".." serves them,
// since `new URL("/etc/passwd", root)` leaves the static root.
const mainPath = fileURLToPath(new URL("../main.ts", import.meta.url));
const clientPath = fileURLToPath(new URL("../static/client.js", import.meta.url));
const passwdPath = "/etc/passwd";
const passwdSource = await Deno.readTextFile(passwdPath);

Deno.test("nothing outside static/ is reachable", async (t) => {
  await using s = await startServer();
  const viaFetch = [
    "/static/../main.ts",
    "/static/%2e%2e/main.ts",
    "/static/%2E%2E/%2E%2E/main.ts",
    "/static/..%2fmain.ts",
    "/static/%2e%2e%2fmain.ts",
    "/static/..%5cmain.ts",
    "/static/client.js%00",
    "/static/%00",
    // Answered 404 by the router or the file system whatever the guard does: kept
    // as routes, the guard's own cases are the absolute paths below.
    "//static/client.js",
    "/static/.",
    "/static/",
    "/main.ts",
    "/deno.json",
  ];
  for (const path of viaFetch) {
    await t.step(`fetch ${path}`, async () => {
      const res = await fetch(`${s.http}${path}`);
      const body = await res.text();
      assert.equal(res.status, 404);
      assert.ok(!body.includes("import.meta.main"));
    });
  }
  // fetch resolves ".." before sending, so these go out byte for byte.
  const viaTcp = [
    "/static/../main.ts",
    "/static/../../main.ts",
    "/static/..\\main.ts",
    "/static\\..\\main.ts",
    "/static/%2e%2e/main.ts",
    "/static/..%2f..%2fmain.ts",
    "/static//../main.ts",
    "//static/client.js",
    "/static/client.js%00",
  ];
  for (const target of viaTcp) {
    await t.step(`raw ${target}`, async () => {
      const { status, body } = await rawGet(s.port, target);
      assert.equal(status, 404);
      assert.ok(!body.includes(mainSource.slice(0, 200)));
    });
  }
  // Files that exist, named by absolute path after "/static/": fetch keeps the empty
  // segment, and the raw request line is sent as it is.
  const absolute: [string, string][] = [
    [passwdPath, passwdSource],
    [mainPath, mainSource],
    [clientPath, await Deno.readTextFile(clientPath)],
  ];
  for (const [path, source] of absolute) {
    assert.ok((await Deno.stat(path)).isFile, `${path} exists, so only the guard can refuse it`);
    const target = `/static/${path}`;
    await t.step(`fetch ${target}`, async () => {
      const res = await fetch(`${s.http}${target}`);
      const body = await res.text();
      assert.equal(res.status, 404);
      assert.ok(!body.includes(source.slice(0, 100)));
    });
    await t.step(`raw ${target}`, async () => {
      const { status, body } = await rawGet(s.port, target);
      assert.equal(status, 404);
      assert.ok(!body.includes(source.slice(0, 100)));
    });
  }
  await t.step("raw NUL byte is refused by the HTTP parser", async () => {
    const { status, body } = await rawGet(s.port, "/static/\0client.js");
    assert.ok(status === 400 || status === 404, `status ${status}`);
    assert.ok(!body.includes("import.meta.main"));
  });
  await t.step("raw request for a real file works (the helper itself is sound)", async () => {
    const { status, body } = await rawGet(s.port, "/static/index.html");
    assert.equal(status, 200);
    assert.ok(body.includes("<html"));
  });
});

Deno.test("dot-files and dot-folders in the static root are not served", async (t) => {
  await using s = await startStaticServer();
  await t.step(
    "a plain file of the same root is served (the root is the temporary one)",
    async () => {
      const res = await fetch(`${s.http}/static/visible.txt`);
      assert.equal(res.status, 200);
      assert.equal(await res.text(), "visible");
    },
  );
  for (const name of [".hidden", ".env", ".git/config", "sub/.hidden"]) {
    assert.match(await Deno.readTextFile(`${s.dir}/${name}`), /^SECRET/);
    await t.step(`fetch /static/${name}`, async () => {
      const res = await fetch(`${s.http}/static/${name}`);
      const body = await res.text();
      assert.equal(res.status, 404);
      assert.ok(!body.includes("SECRET"));
    });
    await t.step(`raw /static/${name}`, async () => {
      const { status, body } = await rawGet(s.port, `/static/${name}`);
      assert.equal(status, 404);
      assert.ok(!body.includes("SECRET"));
    });
  }
  await t.step("a file of the temporary root by absolute path", async () => {
    const { status, body } = await rawGet(s.port, `/static/${s.dir}/.hidden`);
    assert.equal(status, 404);
    assert.ok(!body.includes("SECRET"));
  });
});

Deno.test("unknown paths are 404 and wrong methods 405", async (t) => {
  await using s = await startServer();
  await t.step("unknown paths", async () => {
    for (const path of ["/nope", "/static/nope.js", "/chat/x", "/index.html"]) {
      const res = await fetch(`${s.http}${path}`);
      await res.body?.cancel();
      assert.equal(res.status, 404, path);
    }
  });
  await t.step("POST /", async () => {
    const res = await fetch(`${s.http}/`, { method: "POST", body: "x" });
    await res.body?.cancel();
    assert.equal(res.status, 405);
    assert.match(res.headers.get("allow") ?? "", /GET/);
  });
  await t.step("DELETE /static/client.js", async () => {
    const res = await fetch(`${s.http}/static/client.js`, { method: "DELETE" });
    await res.body?.cancel();
    assert.equal(res.status, 405);
  });
});

Deno.test("missing files are not cached: 10,000 made-up paths, then files appear and are served", async () => {
  // A cached miss would answer 404 for ever and let any client grow the
  // cache with made-up paths; a file created after its miss proves neither.
  const dir = await Deno.makeTempDir({ prefix: "chat_static_" });
  try {
    const handler = createRouter(createStaticRoutes({ root: pathToFileURL(`${dir}/`) }));
    const info = { remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 1 } } as
      & Deno.ServeHandlerInfo
      & { remoteAddr: Deno.NetAddr };
    const get = (name: string) => handler(new Request(`http://localhost/static/${name}`), info);
    const names = Array.from({ length: 10_000 }, (_, i) => `missing-${i}.txt`);
    for (const name of names) {
      const res = await get(name);
      await res.body?.cancel();
      assert.equal(res.status, 404, name);
    }
    for (const name of [names[0]!, names[4_999]!, names[9_999]!]) {
      await Deno.writeTextFile(`${dir}/${name}`, `now ${name}`);
      const res = await get(name);
      assert.equal(res.status, 200, name);
      assert.equal(await res.text(), `now ${name}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
