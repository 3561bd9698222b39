import assert from "node:assert/strict";
import { startServer, type TestServer } from "./helpers/app_server.ts";
import { RawClient } from "./helpers/raw_http.ts";

/** The status of a raw WebSocket handshake on /ws/chat with these headers. */
async function handshake(server: TestServer, headers: Record<string, string>): Promise<number> {
  await using client = await RawClient.connect(server.port);
  const { status } = await client.handshake("/ws/chat", headers);
  return status;
}

Deno.test("without ALLOWED_ORIGINS only the server's own scheme, host and port pass", async (t) => {
  await using server = await startServer();
  const self = `127.0.0.1:${server.port}`;
  const cases: [string, Record<string, string>, number][] = [
    ["the same origin", { Host: self, Origin: `http://${self}` }, 101],
    ["no Origin (not a browser)", { Host: self }, 101],
    ["https on an http server", { Host: self, Origin: `https://${self}` }, 403],
    ["another port", { Host: self, Origin: `http://127.0.0.1:${server.port + 1}` }, 403],
    ["another host", { Host: self, Origin: `http://localhost:${server.port}` }, 403],
    ["Origin: null", { Host: self, Origin: "null" }, 403],
    ["an Origin that is no URL", { Host: self, Origin: "not a url" }, 403],
  ];
  for (const [name, headers, status] of cases) {
    await t.step(name, async () => assert.equal(await handshake(server, headers), status));
  }
});

Deno.test("with ALLOWED_ORIGINS only the listed origins pass, whatever Host says", async (t) => {
  await using server = await startServer({ ALLOWED_ORIGINS: "https://good.example" });
  const self = `127.0.0.1:${server.port}`;
  await t.step("a listed origin", async () => {
    assert.equal(await handshake(server, { Host: self, Origin: "https://good.example" }), 101);
  });
  await t.step("a DNS-rebinding page whose Host matches its Origin", async () => {
    const evil = `evil.example:${server.port}`;
    assert.equal(await handshake(server, { Host: evil, Origin: `http://${evil}` }), 403);
  });
  await t.step("the server's own origin, not listed", async () => {
    assert.equal(await handshake(server, { Host: self, Origin: `http://${self}` }), 403);
  });
  await t.step("a listed host with another scheme", async () => {
    assert.equal(await handshake(server, { Host: self, Origin: "http://good.example" }), 403);
  });
  await t.step("Origin: null", async () => {
    assert.equal(await handshake(server, { Host: self, Origin: "null" }), 403);
  });
});

Deno.test("ALLOWED_ORIGINS=* lets any http(s) origin in but never Origin: null", async (t) => {
  await using server = await startServer({ ALLOWED_ORIGINS: "*" });
  const self = `127.0.0.1:${server.port}`;
  await t.step("any origin", async () => {
    assert.equal(await handshake(server, { Host: self, Origin: "https://any.example" }), 101);
  });
  await t.step("Origin: null", async () => {
    assert.equal(await handshake(server, { Host: self, Origin: "null" }), 403);
  });
  await t.step("a file:// page", async () => {
    assert.equal(await handshake(server, { Host: self, Origin: "file://" }), 403);
  });
});

Deno.test("behind a trusted proxy the same-origin check uses X-Forwarded-Proto and X-Forwarded-Host", async (t) => {
  const page = "https://chat.example";
  await t.step("with TRUST_PROXY", async (t) => {
    await using server = await startServer({ TRUST_PROXY: "true" });
    const forwarded = { "X-Forwarded-Proto": "https" };
    await t.step("TLS ended at the proxy, Host passed on", async () => {
      const headers = { Host: "chat.example", Origin: page, ...forwarded };
      assert.equal(await handshake(server, headers), 101);
    });
    await t.step("Host rewritten, X-Forwarded-Host set", async () => {
      const headers = {
        Host: `127.0.0.1:${server.port}`,
        Origin: page,
        "X-Forwarded-Host": "chat.example",
        ...forwarded,
      };
      assert.equal(await handshake(server, headers), 101);
    });
    await t.step("an http page when the proxy says https", async () => {
      const headers = { Host: "chat.example", Origin: "http://chat.example", ...forwarded };
      assert.equal(await handshake(server, headers), 403);
    });
  });
  await t.step("without TRUST_PROXY the headers are ignored", async () => {
    await using server = await startServer();
    const headers = { Host: "chat.example", Origin: page, "X-Forwarded-Proto": "https" };
    assert.equal(await handshake(server, headers), 403);
  });
});
