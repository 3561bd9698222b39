/**
 * One person, several tabs, in real headless Chromium (issue 20): the tabs
 * of one browser share a name (its key), another browser cannot take it,
 * and a reload reconnects by itself to the same name and room.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { Page } from "./helpers/cdp.ts";
import { CHROMIUM_MISSING, chromiumIgnored, launchChromium } from "./helpers/chromium.ts";
import { js, startPageServer, statusIs } from "./helpers/chat_page.ts";

const ignored = chromiumIgnored();

function statusText(page: Page): Promise<string> {
  return page.evaluate(`document.getElementById("status").textContent`);
}

async function submitJoin(page: Page, base: string, name: string, room: string): Promise<void> {
  await page.goto(`${base}/?room=${encodeURIComponent(room)}`);
  await page.evaluate(`document.getElementById("username").value = ${js(name)}`);
  await page.click("#connect");
}

function users(page: Page): Promise<string[]> {
  return page.evaluate(
    `[...document.querySelectorAll("#user-list .user-name")].map((e) => e.textContent)`,
  );
}

Deno.test({
  name: `one browser, several tabs: one name, and a reload reconnects${
    ignored ? ` (skipped: ${CHROMIUM_MISSING})` : ""
  }`,
  ignore: ignored,
  async fn(t) {
    await using server = await startPageServer();
    await using browser = await launchChromium();
    const viewport = { width: 800, height: 600 };
    await using first = await browser.newPage(viewport);
    await using second = await browser.newPage({ ...viewport, tabOf: first });
    await using stranger = await browser.newPage(viewport);

    await t.step("a second tab of the same browser connects with the same name", async () => {
      await submitJoin(first, server.base, "Tabby", "den");
      await first.waitFor(statusIs("connected"));
      await submitJoin(second, server.base, "Tabby", "den");
      await second.waitFor(statusIs("connected"));
      assert.deepEqual(await users(second), ["Tabby"]);
      assert.deepEqual(server.app.manager.users("den"), ["Tabby"]);
    });

    await t.step("another browser asking for the name is refused", async () => {
      await submitJoin(stranger, server.base, "Tabby", "den");
      await stranger.waitFor(statusIs("disconnected"));
      assert.match(await statusText(stranger), /Username already in use/);
    });

    await t.step("a reload reconnects to the same name and room without Connect", async () => {
      await second.goto(`${server.base}/`);
      await second.waitFor(statusIs("connected"));
      assert.match(await statusText(second), /Connected as Tabby/);
      assert.equal(
        await second.evaluate(`document.getElementById("room-name").textContent`),
        "#den",
      );
    });

    await t.step("after Disconnect a reload shows the form again", async () => {
      await second.click("#disconnect");
      await second.goto(`${server.base}/`);
      await second.waitFor(`!document.getElementById("join-form").hidden`);
      assert.ok(await second.evaluate(statusIs("idle")));
    });
  },
});
