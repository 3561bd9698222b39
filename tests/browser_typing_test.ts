/**
 * "alice is typing…" in real headless Chromium (issue 20): shown to the
 * others in the room while someone types, gone when the message arrives or
 * after five seconds, never sent for an empty input.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { Page } from "./helpers/cdp.ts";
import { browserTest, launchChromium } from "./helpers/chromium.ts";
import { joinPage, startPageServer } from "./helpers/chat_page.ts";

function typingText(page: Page): Promise<string> {
  return page.evaluate(`document.getElementById("typing").textContent`);
}

browserTest("the others see who is typing", async (t) => {
  await using server = await startPageServer();
  await using browser = await launchChromium();
  await using alice = await browser.newPage({ width: 800, height: 600 });
  await using bob = await browser.newPage({ width: 800, height: 600 });
  await joinPage(alice, { base: server.base, name: "Alice" });
  await joinPage(bob, { base: server.base, name: "Bob" });

  await t.step("an empty input says nothing", async () => {
    await alice.type("#message", "   ");
    await alice.evaluate(`document.getElementById("message").value = ""`);
    // A message after it: had the spaces sent a typing frame, it would have come first.
    await bob.type("#message", "ping");
    await bob.press("Enter");
    await alice.waitFor(`document.getElementById("messages").textContent.includes("ping")`);
    assert.equal(await typingText(bob), "");
  });
  await t.step("typing shows on the other page, not on one's own", async () => {
    await alice.type("#message", "hel");
    await bob.waitFor(`document.getElementById("typing").textContent === "Alice is typing…"`);
    assert.equal(await typingText(alice), "");
  });
  await t.step("the message arriving ends it", async () => {
    await alice.type("#message", "lo");
    await alice.press("Enter");
    await bob.waitFor(`document.getElementById("typing").textContent === ""`);
  });
  await t.step("five seconds without a new one end it", async () => {
    // Keep typing as a person does until the next frame goes (one per 2 s at most).
    for (let i = 0; i < 16 && (await typingText(bob)) === ""; i++) {
      await alice.type("#message", "m");
      await bob.waitFor(`document.getElementById("typing").textContent !== ""`, {
        timeoutMs: 250,
      }).catch(() => {});
    }
    assert.equal(await typingText(bob), "Alice is typing…");
    const shown = Date.now();
    await bob.waitFor(`document.getElementById("typing").textContent === ""`, {
      timeoutMs: 8000,
    });
    assert.ok(Date.now() - shown >= 4000, "it went too early");
  });
});
