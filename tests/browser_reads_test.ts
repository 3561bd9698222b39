/**
 * Read positions in real headless Chromium (issue 20): the page lists the
 * people written with privately with their unread counts, shows "Seen"
 * under one's own message the other person read, and keeps unread counts
 * and a "New messages" divider across a reload, from the positions the
 * server stores for the browser's key.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { Page } from "./helpers/cdp.ts";
import { browserTest, launchChromium } from "./helpers/chromium.ts";
import {
  joinPage,
  js,
  roomClient,
  type RoomClientOptions,
  startPageServer,
  statusIs,
} from "./helpers/chat_page.ts";

/** A test client of `name` in `room` with its uid and epoch from the welcome. */
async function client(base: string, who: RoomClientOptions) {
  const c = await roomClient(base, who);
  const welcome = c.frames.find((f) => f.type === "welcome")!;
  return { c, uid: String(welcome.uid), epoch: String(welcome.epoch) };
}

/** An expression: the unread count beside a person in the list of conversations. */
function talkUnread(name: string): string {
  return `[...document.querySelectorAll("#talk-list .talk")]
    .find((e) => e.querySelector(".talk-name").textContent === ${js(name)})
    ?.querySelector(".unread")?.textContent ?? "none"`;
}

/** An expression: the unread count beside a room ("" when none). */
function roomUnread(room: string): string {
  return `document.querySelector(${
    js(`#room-list [data-room="${room}"] .unread`)
  })?.textContent ?? ""`;
}

function hasChat(text: string): string {
  return `[...document.querySelectorAll('#messages [data-testid="message"] .text')]
    .some((e) => e.textContent === ${js(text)})`;
}

/** The texts of the log shown, the divider as "--". */
function logTexts(page: Page): Promise<string[]> {
  return page.evaluate(`[...document.querySelectorAll("#messages > li")]
    .filter((e) => e.matches('.new-divider, [data-testid="message"]'))
    .map((e) => e.matches(".new-divider") ? "--" : e.querySelector(".text").textContent)`);
}

browserTest("conversations are listed with unread counts and read receipts", async (t) => {
  await using server = await startPageServer();
  await using browser = await launchChromium();
  await using page = await browser.newPage({ width: 900, height: 700 });
  const bob = await client(server.base, {
    name: "Bob",
    room: "lobby",
    key: "bob-key-0123456789abcdefgh",
  });
  await using _bob = bob.c;
  await joinPage(page, { base: server.base, name: "Alice", room: "lobby" });

  await t.step("two private messages show as 2 beside Bob", async () => {
    for (const text of ["hi 1", "hi 2"]) {
      bob.c.sendJson({ type: "private", to: "Alice", message: text });
      await bob.c.next((f) => f.type === "private" && f.message === text);
    }
    await page.waitFor(`${talkUnread("Bob")} === "2"`);
  });
  let aliceUid = "";
  await t.step("choosing Bob reads them, and Bob gets the receipt", async () => {
    await page.click("#talk-list .talk-button");
    await page.waitFor(`${talkUnread("Bob")} === "none"`);
    const seen = await bob.c.next("seen");
    aliceUid = String(seen.with);
    const last = bob.c.frames.filter((f) => f.type === "private").at(-1)!;
    assert.equal(seen.id, last.id);
    assert.equal(
      await page.evaluate(`document.getElementById("room-name").textContent`),
      "Bob (private)",
    );
    assert.deepEqual(await logTexts(page), ["hi 1", "hi 2"]);
  });
  await t.step("Alice's message shows Seen once Bob read it", async () => {
    await page.evaluate(`document.getElementById("message").value = "hello Bob"`);
    await page.press("Enter", { selector: "#message" });
    const mine = await bob.c.next((f) => f.type === "private" && f.message === "hello Bob");
    // Her own message counts as read by her: stored within a second (reads are paced).
    await bob.c.next((f) => f.type === "seen" && f.id === mine.id);
    assert.equal(await page.evaluate(`document.querySelector(".seen") === null`), true);
    bob.c.sendJson({ type: "read", with: aliceUid, to: "Alice", id: mine.id, epoch: bob.epoch });
    await page.waitFor(`document.querySelector('[data-testid="seen"]') !== null`);
    assert.equal(
      await page.evaluate(
        `document.querySelector('[data-testid="seen"]').closest("li").querySelector(".text").textContent`,
      ),
      "hello Bob",
    );
  });
  await t.step(
    "the conversation has a view of its own; the room keeps its private lines",
    async () => {
      bob.c.sendJson({ type: "message", message: "in the room" });
      await bob.c.next((f) => f.type === "message" && f.message === "in the room");
      await page.click(`#room-list [data-room="lobby"] .room-button`);
      await page.waitFor(hasChat("in the room"));
      // Received while the room was shown: there too, as the seed shows private messages.
      assert.deepEqual(await logTexts(page), ["hi 1", "hi 2", "in the room"]);
      await page.click(`#talk-list [data-uid="${bob.uid}"] .talk-button`);
      await page.waitFor(hasChat("hello Bob"));
      assert.deepEqual(await logTexts(page), ["hi 1", "hi 2", "hello Bob"]);
    },
  );
  await t.step(
    "written from the room, a private message is in the conversation too",
    async () => {
      const carol = await client(server.base, {
        name: "Carol",
        room: "lobby",
        key: "carol-key-0123456789abcdef",
      });
      await using _carol = carol.c;
      await page.click(`#room-list [data-room="lobby"] .room-button`);
      await page.waitFor(`document.querySelector('#user-list [data-user="Carol"]') !== null`);
      await page.click('#user-list [data-user="Carol"]');
      await page.evaluate(`document.getElementById("message").value = "hi Carol"`);
      await page.press("Enter", { selector: "#message" });
      await carol.c.next((f) => f.type === "private" && f.message === "hi Carol");
      await page.waitFor(`document.querySelector('#messages [data-state="stored"]') !== null`);
      assert.deepEqual(await logTexts(page), ["hi 1", "hi 2", "in the room", "hi Carol"]);
      await page.click(`#talk-list [data-uid="${carol.uid}"] .talk-button`);
      await page.waitFor(
        `document.getElementById("room-name").textContent === "Carol (private)"`,
      );
      assert.deepEqual(await logTexts(page), ["hi Carol"]);
      await page.click("#private-cancel");
      await page.waitFor(`document.getElementById("room-name").textContent === "#lobby"`);
    },
  );
  await t.step(
    "a new tab lists the conversation from the server, with what is unread",
    async () => {
      bob.c.sendJson({ type: "private", to: "Alice", message: "hi 3" });
      await page.waitFor(`${talkUnread("Bob")} === "1"`);
      // The same browser: the same key, so the same person, with no session of its own.
      await using other = await browser.newPage({ width: 900, height: 700, tabOf: page });
      await joinPage(other, { base: server.base, name: "Alice", room: "lobby" });
      await other.waitFor(`document.querySelector("#talk-list .talk") !== null`);
      assert.equal(await other.evaluate(talkUnread("Bob")), "1");
      await other.click(`#talk-list [data-uid="${bob.uid}"] .talk-button`);
      await other.waitFor(hasChat("hello Bob"));
      await other.waitFor(`document.querySelector('[data-testid="seen"]') !== null`);
      await page.waitFor(`${talkUnread("Bob")} === "none"`);
    },
  );
});

browserTest("unread counts and the new-messages divider survive a reload", async (t) => {
  await using server = await startPageServer();
  await using browser = await launchChromium();
  await using page = await browser.newPage({ width: 900, height: 700 });
  const tess = await client(server.base, { name: "Tess", room: "dev" });
  await using _tess = tess.c;
  await joinPage(page, { base: server.base, name: "Rea", room: "dev" });
  const say = async (text: string) => {
    tess.c.sendJson({ type: "message", message: text });
    await tess.c.next((f) => f.type === "message" && f.message === text);
  };
  await say("d0");
  await page.waitFor(hasChat("d0"));

  await t.step("messages to a room not shown are counted", async () => {
    await page.click("#switch-button");
    await page.evaluate(`document.getElementById("switch-input").value = "lobby"`);
    await page.press("Enter", { selector: "#switch-input" });
    await page.waitFor(`document.getElementById("room-name").textContent === "#lobby"`);
    await say("d1");
    await say("d2");
    await page.waitFor(`${roomUnread("dev")} === "2"`);
  });
  await t.step("a reload keeps the count: the server kept where Rea stopped", async () => {
    await page.goto(`${server.base}/`);
    await page.waitFor(statusIs("connected"));
    await page.waitFor(`document.querySelector('#room-list [data-room="dev"]') !== null`);
    await page.waitFor(`${roomUnread("dev")} === "2"`);
  });
  await t.step("showing the room puts the divider above the first unread", async () => {
    await page.click(`#room-list [data-room="dev"] .room-button`);
    await page.waitFor(hasChat("d2"));
    assert.deepEqual(await logTexts(page), ["d0", "--", "d1", "d2"]);
    assert.equal(await page.evaluate(roomUnread("dev")), "");
  });
});
