/**
 * Browser notifications in real headless Chromium (issue 20): a private
 * message or a mention while the tab is hidden, once allowed; nothing for
 * other messages or while the tab is shown.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { Page } from "./helpers/cdp.ts";
import { joinPage, js, startPageServer } from "./helpers/chat_page.ts";
import { browserTest, launchChromium } from "./helpers/chromium.ts";
import { TestClient } from "./helpers/ws_client.ts";

/** Records notifications instead of showing them; permission as given. */
const FAKE_NOTIFICATION = `
  window.notes = [];
  window.Notification = class {
    static permission = "default";
    static requestPermission() {
      window.Notification.permission = "granted";
      return Promise.resolve("granted");
    }
    constructor(title, options) { window.notes.push({ title, body: options?.body ?? "" }); }
    addEventListener() {}
    close() {}
  };`;

function setHidden(page: Page, hidden: boolean): Promise<unknown> {
  return page.evaluate(`(() => {
    Object.defineProperty(document, "visibilityState", {
      value: ${js(hidden ? "hidden" : "visible")},
      configurable: true,
    });
    document.dispatchEvent(new Event("visibilitychange"));
  })()`);
}

function notes(page: Page): Promise<{ title: string; body: string }[]> {
  return page.evaluate("window.notes");
}

browserTest("notifications for a private message or a mention in a hidden tab", async (t) => {
  await using server = await startPageServer();
  await using browser = await launchChromium();
  await using page = await browser.newPage({ width: 800, height: 600 });
  await page.session.send("Page.addScriptToEvaluateOnNewDocument", { source: FAKE_NOTIFICATION });
  await joinPage(page, { base: server.base, name: "Anne" });
  await using bob = await TestClient.connect(`ws://127.0.0.1:${server.port}/ws/chat/bob`);
  await bob.next("welcome");
  const said = (text: string) =>
    page.waitFor(`document.getElementById("messages").textContent.includes(${js(text)})`);

  await t.step("nothing before the person allows it", async () => {
    await setHidden(page, true);
    bob.sendJson({ type: "private", to: "Anne", message: "before allowing" });
    await said("before allowing");
    assert.deepEqual(await notes(page), []);
  });
  await t.step("the Notify me button asks, then hides", async () => {
    await setHidden(page, false);
    assert.ok(await page.evaluate(`!document.getElementById("notify-button").hidden`));
    await page.click("#notify-button");
    await page.waitFor(`document.getElementById("notify-button").hidden`);
  });
  await t.step("hidden: a private message and a mention notify", async () => {
    await setHidden(page, true);
    bob.sendJson({ type: "private", to: "Anne", message: "psst" });
    await said("psst");
    bob.sendJson({ type: "message", message: "hey @anne, look" });
    await said("hey @anne, look");
    assert.deepEqual(await notes(page), [
      { title: "bob (private)", body: "psst" },
      { title: "bob in #lobby", body: "hey @anne, look" },
    ]);
  });
  await t.step("other messages, and a shown tab, do not", async () => {
    bob.sendJson({ type: "message", message: "just chatting with annex" });
    await said("just chatting with annex");
    await setHidden(page, false);
    bob.sendJson({ type: "private", to: "Anne", message: "you are here" });
    await said("you are here");
    assert.equal((await notes(page)).length, 2);
  });
});
