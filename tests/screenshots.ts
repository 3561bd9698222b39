/**
 * Writes the page's screenshots in docs/screenshots/: desktop and a 360 px
 * phone, light and dark, with two rooms (an unread count on the other),
 * grouped messages, a day separator, someone typing and a conversation
 * with unread private messages. Run it by hand
 * after a change to the page, and look at every image before committing:
 *
 * ```sh
 * deno run -A tests/screenshots.ts
 * ```
 *
 * @module
 */

import type { Page } from "./helpers/cdp.ts";
import { js, startPageServer, statusIs } from "./helpers/chat_page.ts";
import { launchChromium } from "./helpers/chromium.ts";
import { TestClient } from "./helpers/ws_client.ts";

const OUT = new URL("../docs/screenshots/", import.meta.url);
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function say(client: TestClient, message: string, room = "lobby"): Promise<void> {
  client.sendJson({ type: "message", message, room });
  await client.next((f) => f.type === "message" && f.message === message);
}

async function shoot(page: Page, bob: TestClient, name: string): Promise<void> {
  for (const scheme of ["light", "dark"]) {
    await page.session.send("Emulation.setEmulatedMedia", {
      features: [{ name: "prefers-color-scheme", value: scheme }],
    });
    // Typing frames pass at most once per 2 s per person and room.
    await pause(2100);
    bob.sendJson({ type: "typing" });
    await page.waitFor(`document.getElementById("typing").textContent !== ""`);
    await page.screenshot(new URL(`${name}-${scheme}.png`, OUT));
  }
}

await using server = await startPageServer();
await using browser = await launchChromium();
const ws = (path: string) => `ws://127.0.0.1:${server.port}${path}`;
await using bob = await TestClient.connect(ws("/ws/chat/Bob"));
await using carol = await TestClient.connect(ws("/ws/chat/Carol?room=design"));
// With a browser key: his private messages are kept as a conversation.
await using dan = await TestClient.connect(ws("/ws/chat/Dan?room=design"), {
  protocols: ["chat", "key.dan-screenshot-key-0123456789"],
});
await bob.next("welcome");
await carol.next("welcome");
await dan.next("welcome");

async function whisper(to: string, message: string): Promise<void> {
  dan.sendJson({ type: "private", to, message });
  await dan.next((f) => f.type === "private" && f.message === message);
}

for (
  const [name, size] of [["desktop", { width: 900, height: 620 }], ["phone", {
    width: 360,
    height: 700,
  }]] as const
) {
  await using page = await browser.newPage(size);
  const me = name === "desktop" ? "Alice" : "Ana";
  await page.goto(`${server.base}/?room=lobby`);
  await page.evaluate(`document.getElementById("username").value = ${js(me)}`);
  await page.click("#connect");
  await page.waitFor(statusIs("connected"));
  await page.click("#switch-button");
  await page.evaluate(`document.getElementById("switch-input").value = "design"`);
  await page.press("Enter", { selector: "#switch-input" });
  await page.waitFor(`document.getElementById("room-name").textContent === "#design"`);
  await page.evaluate(`[...document.querySelectorAll("#room-list button")]
    .find((b) => b.textContent.includes("lobby"))?.click()`);
  await page.waitFor(`document.getElementById("room-name").textContent === "#lobby"`);
  await say(bob, `Morning ${me}! Did you see the new build?`);
  await say(bob, "It reconnects by itself now, and nothing is lost.");
  await page.evaluate(`document.getElementById("message").value = "Yes! Trying it on my phone."`);
  await page.press("Enter", { selector: "#message" });
  await whisper(me, "Demo at 3?");
  await whisper(me, "I saved you a seat.");
  await say(bob, "Release notes: https://example.com/notes");
  await say(carol, "New mockups are up.", "design");
  await say(carol, "Two of them, for the room list.", "design");
  await shoot(page, bob, name);
}
console.log(`Wrote ${OUT.pathname}{desktop,phone}-{light,dark}.png`);
