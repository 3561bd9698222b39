/**
 * One person, several tabs, in real headless Chromium (issue 20): the tabs
 * of one browser share a name (its key), another browser cannot take it,
 * and a reload reconnects by itself to the same name and room.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { Page } from "./helpers/cdp.ts";
import { browserTest, launchChromium } from "./helpers/chromium.ts";
import { js, startPageServer, statusIs, submitJoin } from "./helpers/chat_page.ts";
import { eventually } from "./helpers/eventually.ts";
import { TestClient } from "./helpers/ws_client.ts";

function statusText(page: Page): Promise<string> {
  return page.evaluate(`document.getElementById("status").textContent`);
}

/** An expression true when the log shows `text` as one's own message. */
function ownText(text: string): string {
  return `[...document.querySelectorAll('#messages .message.own .text')]
    .some((e) => e.textContent === ${js(text)})`;
}

function users(page: Page): Promise<string[]> {
  return page.evaluate(
    `[...document.querySelectorAll("#user-list .user-name")].map((e) => e.textContent)`,
  );
}

browserTest("one browser, several tabs: one name, and a reload reconnects", async (t) => {
  await using server = await startPageServer();
  await using browser = await launchChromium();
  const viewport = { width: 800, height: 600 };
  await using first = await browser.newPage(viewport);
  await using second = await browser.newPage({ ...viewport, tabOf: first });
  await using stranger = await browser.newPage(viewport);

  await t.step("a second tab of the same browser connects with the same name", async () => {
    await submitJoin(first, { base: server.base, name: "Tabby", room: "den" });
    await first.waitFor(statusIs("connected"));
    await submitJoin(second, { base: server.base, name: "Tabby", room: "den" });
    await second.waitFor(statusIs("connected"));
    assert.deepEqual(await users(second), ["Tabby"]);
    assert.deepEqual(server.app.manager.users("den"), ["Tabby"]);
  });

  await t.step("another browser asking for the name is refused", async () => {
    await submitJoin(stranger, { base: server.base, name: "Tabby", room: "den" });
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

  await t.step(
    "after a rename and a reload one's earlier messages are still one's own",
    async () => {
      await second.evaluate(`document.getElementById("message").value = "mine, before"`);
      await second.press("Enter", { selector: "#message" });
      await second.waitFor(ownText("mine, before"));
      await second.click("#rename-button");
      await second.evaluate(`document.getElementById("rename-input").value = "Tabitha"`);
      await second.press("Enter", { selector: "#rename-input" });
      await second.waitFor(`document.getElementById("my-name").textContent === "Tabitha"`);
      await second.goto(`${server.base}/`);
      await second.waitFor(statusIs("connected"));
      await second.waitFor(ownText("mine, before"));
    },
  );

  await t.step("after Disconnect a reload shows the form again", async () => {
    await second.click("#disconnect");
    await second.goto(`${server.base}/`);
    await second.waitFor(`!document.getElementById("join-form").hidden`);
    assert.ok(await second.evaluate(statusIs("idle")));
  });
});

browserTest("a hidden tab beats slower and is not dropped while frozen", async (t) => {
  // The page's heartbeat route: a ping every 300 ms, dropped after 1 s of silence.
  await using server = await startPageServer({
    HEARTBEAT_INTERVAL_MS: "300",
    HEARTBEAT_TIMEOUT_MS: "1000",
  });
  await using browser = await launchChromium();
  await using page = await browser.newPage({ width: 800, height: 600 });
  await submitJoin(page, { base: server.base, name: "Sleepy", room: "lobby" });
  await page.waitFor(statusIs("connected"));
  const frozenFor = async (ms: number) => {
    await page.session.send("Page.setWebLifecycleState", { state: "frozen" });
    await new Promise((resolve) => setTimeout(resolve, ms));
    await page.session.send("Page.setWebLifecycleState", { state: "active" });
  };

  await t.step("hidden, then frozen for 2.5 s: still the same connection", async () => {
    await page.evaluate(`(() => {
        Object.defineProperty(document, "visibilityState", { value: "hidden", configurable: true });
        document.dispatchEvent(new Event("visibilitychange"));
      })()`);
    // The ack of the slower heartbeat comes back before the page freezes.
    await new Promise((resolve) => setTimeout(resolve, 300));
    await frozenFor(2500);
    await page.waitFor(statusIs("connected"));
    assert.equal(server.app.manager.metrics.heartbeatTimeouts, 0);
  });
  await t.step("shown again, the server's own pace: frozen 2.5 s is a timeout", async () => {
    await page.evaluate(`(() => {
        Object.defineProperty(document, "visibilityState", { value: "visible", configurable: true });
        document.dispatchEvent(new Event("visibilitychange"));
      })()`);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await frozenFor(2500);
    await eventually("dropped", () => server.app.manager.metrics.heartbeatTimeouts === 1);
    await page.waitFor(statusIs("connected"), { timeoutMs: 10_000 });
  });
});

browserTest("a reload shows the private conversation again", async () => {
  await using server = await startPageServer();
  await using browser = await launchChromium();
  await using page = await browser.newPage({ width: 800, height: 600 });
  await submitJoin(page, { base: server.base, name: "Priya", room: "lobby" });
  await page.waitFor(statusIs("connected"));
  await using bob = await TestClient.connect(
    `ws://127.0.0.1:${server.port}/ws/chat/Bob`,
    { protocols: ["chat", "key.bob-key-0123456789abcdefgh"] },
  );
  await bob.next("welcome");
  bob.sendJson({ type: "private", to: "Priya", message: "a secret for you" });
  const shown = `[...document.querySelectorAll('#messages [data-private="true"] .text')]
      .filter((e) => e.textContent === "a secret for you").length`;
  await page.waitFor(`${shown} === 1`);
  await page.goto(`${server.base}/`);
  await page.waitFor(statusIs("connected"));
  await page.waitFor(`${shown} === 1`);
});
