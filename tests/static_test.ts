import assert from "node:assert/strict";
import { createApp, loadConfig } from "../main.ts";

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
      assert.ok(res.headers.get("etag"));
      assert.ok(res.headers.get("cache-control"));
      assertSecurityHeaders(res.headers);
      assert.equal(await res.text(), indexSource);
    });
  }
});

Deno.test("static files carry their Content-Type", async (t) => {
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
      const file = await Deno.readFile(new URL(`..${path}`, import.meta.url));
      assert.deepEqual(new Uint8Array(await res.arrayBuffer()), file);
    });
  }
});

Deno.test("an If-None-Match with the ETag is answered 304 without a body", async (t) => {
  await using s = await startServer();
  const first = await fetch(`${s.http}/static/client.js`);
  await first.body?.cancel();
  const etag = first.headers.get("etag");
  assert.ok(etag, "an ETag is sent");
  await t.step("matching tag", async () => {
    const res = await fetch(`${s.http}/static/client.js`, { headers: { "if-none-match": etag } });
    assert.equal(res.status, 304);
    assert.equal(res.headers.get("etag"), etag);
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
    "/static//client.js",
    "//static/client.js",
    "/static/.",
    "/static/",
    "/static/.hidden",
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
