/**
 * The chat page on a server with authentication: the page takes its token
 * from the `#token=` fragment and offers it as the `bearer.<jwt>`
 * subprotocol; the name comes from the token.
 *
 * @module
 */

import assert from "node:assert/strict";
import { signJwt } from "../chat/auth/jwt.ts";
import { createApp, loadConfig } from "../main.ts";
import { browserTest, launchChromium } from "./helpers/chromium.ts";

const SECRET = "browser-auth-test-secret";

browserTest("page connects with a token from its address fragment", async (t) => {
  const app = await createApp(loadConfig({ CHAT_ENGINE: "memory", AUTH_SECRET: SECRET }));
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, app.handler);
  const base = `http://127.0.0.1:${server.addr.port}`;
  await using browser = await launchChromium();
  try {
    await t.step("a valid token names the user and connects", async () => {
      const exp = Math.floor(Date.now() / 1000) + 300;
      const token = await signJwt({ sub: "u-42", name: "Tokened", exp }, SECRET);
      await using page = await browser.newPage({ width: 900, height: 700 });
      await page.goto(`${base}/?room=lobby#token=${token}`);
      await page.type("#username", "Ignored");
      await page.click("#connect");
      await page.waitFor(`document.getElementById("status").dataset.state === "connected"`, {
        timeoutMs: 10_000,
      });
      assert.deepEqual(app.manager.connections().map((c) => [c.username, c.userId]), [[
        "Tokened",
        "u-42",
      ]]);
      // The fragment is removed from the address so it is not shared by copy and paste.
      assert.equal(await page.evaluate<string>("location.hash"), "");
    });
    await t.step("without a token the server refuses with Unauthorized", async () => {
      await using page = await browser.newPage({ width: 900, height: 700 });
      await page.goto(`${base}/?room=lobby`);
      await page.type("#username", "Nobody");
      await page.click("#connect");
      await page.waitFor(
        `document.getElementById("status").textContent.includes("Unauthorized")`,
        { timeoutMs: 10_000 },
      );
      assert.equal(app.manager.connections().some((c) => c.username === "Nobody"), false);
    });
  } finally {
    await app[Symbol.asyncDispose]();
    await server.shutdown();
  }
});
