/**
 * Several rooms at once in real headless Chromium (issue 20): the page stays
 * in every room it joined, lists them with an unread count beside each room
 * not shown, switches between them without leaving, keeps each room's
 * messages apart, leaves one with its Leave control, joins one from the list
 * of other rooms (GET /api/rooms), puts the unread total in a hidden tab's
 * title, and fits a 360 px phone.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { Page } from "./helpers/cdp.ts";
import { browserTest, launchChromium } from "./helpers/chromium.ts";
import { joinPage, js, roomClient, startPageServer, statusIs } from "./helpers/chat_page.ts";
import { eventually } from "./helpers/eventually.ts";

/** The room-list item of `room`, as a selector. */
const item = (room: string) => `#room-list [data-room=${js(room)}]`;

/** An expression true when `room` is the room shown. */
function showing(room: string): string {
  return `document.querySelector(${js(`${item(room)} [aria-current="true"]`)}) !== null &&
    document.getElementById("room-name").textContent === ${js(`#${room}`)}`;
}

/** An expression: the unread count shown beside `room` ("" when none). */
function unread(room: string): string {
  return `document.querySelector(${js(`${item(room)} .unread`)})?.textContent ?? ""`;
}

function texts(page: Page): Promise<string[]> {
  return page.evaluate(
    `[...document.querySelectorAll('#messages [data-testid="message"] .text')]
      .map((e) => e.textContent)`,
  );
}

function hasChat(text: string): string {
  return `[...document.querySelectorAll('#messages [data-testid="message"] .text')]
    .some((e) => e.textContent === ${js(text)})`;
}

function setVisibility(page: Page, state: "hidden" | "visible"): Promise<unknown> {
  return page.evaluate(`(() => {
    Object.defineProperty(document, "visibilityState", { value: ${js(state)}, configurable: true });
    document.dispatchEvent(new Event("visibilitychange"));
  })()`);
}

async function joinFromForm(page: Page, room: string): Promise<void> {
  await page.click("#switch-button");
  await page.waitFor(`!document.getElementById("switch-form").hidden`);
  await page.evaluate(`document.getElementById("switch-input").value = ${js(room)}`);
  await page.press("Enter", { selector: "#switch-input" });
  await page.waitFor(showing(room));
}

browserTest(
  "several rooms at once: a list, unread counts, switching without leaving",
  async (t) => {
    await using server = await startPageServer();
    await using browser = await launchChromium();
    await using page = await browser.newPage({ width: 900, height: 700 });
    await using tess = await roomClient(server.base, { name: "Tess", room: "first" });
    await using sam = await roomClient(server.base, { name: "Sam", room: "second" });
    const inRoom = (room: string) => server.app.manager.users(room).includes("Rea");
    await joinPage(page, { base: server.base, name: "Rea", room: "first" });

    await t.step("the form joins a second room and the first stays", async () => {
      await joinFromForm(page, "second");
      await page.waitFor(`document.querySelector(${js(item("first"))}) !== null`);
      assert.deepEqual(
        await page.evaluate(
          `[...document.querySelectorAll("#room-list [data-room]")].map((e) => e.dataset.room)`,
        ),
        ["first", "second"],
      );
      await eventually("Rea in both rooms", () => inRoom("first") && inRoom("second"));
      assert.equal(
        await page.evaluate(`new URL(location.href).searchParams.get("room")`),
        "second",
      );
    });

    await t.step("a message to the first room is counted beside it, a notice is not", async () => {
      // Una's join notice comes to the first room before Tess's message, and Sam's message
      // to the second room, shown, comes after both on the page's one socket.
      await using _una = await roomClient(server.base, { name: "Una", room: "first" });
      tess.sendJson({ type: "message", message: "hello first" });
      await tess.next((f) => f.type === "message" && f.message === "hello first");
      sam.sendJson({ type: "message", message: "fence" });
      await page.waitFor(hasChat("fence"));
      assert.equal(await page.evaluate(unread("first")), "1");
      assert.equal(await page.evaluate(unread("second")), "");
      assert.ok(!(await texts(page)).includes("hello first"), "shown in the wrong room");
    });

    await t.step("switching back shows it and clears the count", async () => {
      await page.click(`${item("first")} .room-button`);
      await page.waitFor(showing("first"));
      await page.waitFor(hasChat("hello first"));
      assert.equal(await page.evaluate(unread("first")), "");
      assert.equal(await page.evaluate(`new URL(location.href).searchParams.get("room")`), "first");
      assert.ok(inRoom("second"), "switching left the second room");
    });

    await t.step("each room shows its own messages only", async () => {
      sam.sendJson({ type: "message", message: "hello second" });
      await page.waitFor(`${unread("second")} === "1"`);
      assert.deepEqual(await texts(page), ["hello first"]);
      await page.click(`${item("second")} .room-button`);
      await page.waitFor(showing("second"));
      await page.waitFor(hasChat("hello second"));
      assert.deepEqual(await texts(page), ["fence", "hello second"]);
      await page.click(`${item("first")} .room-button`);
      await page.waitFor(showing("first"));
      assert.deepEqual(await texts(page), ["hello first"]);
    });

    await t.step("Leave removes a room, and the last room has none", async () => {
      await page.click(`${item("second")} .room-leave`);
      await page.waitFor(`document.querySelector(${js(item("second"))}) === null`);
      await eventually("Rea left the second room", () => !inRoom("second"));
      assert.ok(inRoom("first"));
      assert.equal(
        await page.evaluate(`document.querySelectorAll("#room-list .room-leave").length`),
        0,
      );
      await page.waitFor(showing("first"));
    });

    await t.step("the list of other rooms joins one", async () => {
      await page.click("#more-rooms summary");
      await page.waitFor(
        `document.querySelector('#other-rooms [data-room="second"] button') !== null`,
      );
      // One's own rooms are not offered again.
      assert.equal(
        await page.evaluate(`document.querySelector('#other-rooms [data-room="first"]')`),
        null,
      );
      await page.click(`#other-rooms [data-room="second"] button`);
      await page.waitFor(showing("second"));
      await page.waitFor(hasChat("hello second"));
      await eventually("Rea in both rooms again", () => inRoom("first") && inRoom("second"));
    });

    await t.step("a hidden tab's title shows the unread total", async () => {
      assert.equal(await page.evaluate(`document.title`), "Deno Chat");
      await setVisibility(page, "hidden");
      tess.sendJson({ type: "message", message: "one" });
      tess.sendJson({ type: "message", message: "two" });
      await page.waitFor(`document.title === "(2) Deno Chat"`);
      sam.sendJson({ type: "message", message: "three" });
      await page.waitFor(`document.title === "(3) Deno Chat"`);
      await setVisibility(page, "visible");
      await page.waitFor(`document.title === "Deno Chat"`);
      assert.equal(await page.evaluate(unread("first")), "2");
    });

    await t.step("a reload comes back to the room shown, in both rooms", async () => {
      await page.goto(`${server.base}/`);
      await page.waitFor(statusIs("connected"));
      await page.waitFor(showing("second"));
      await page.waitFor(`document.querySelector(${js(item("first"))}) !== null`);
      await page.waitFor(hasChat("three"));
    });
  },
);

/**
 * Texts in the room strip and its drop-down under 4.5:1 against the first opaque
 * background up their ancestors (the strip has no translucent or gradient ones).
 */
const ROOMS_LOW_CONTRAST = `(() => {
  const parse = (text) => {
    const m = /rgba?\\(\\s*([\\d.]+)[,\\s]+([\\d.]+)[,\\s]+([\\d.]+)(?:\\s*[,/]\\s*([\\d.]+))?/.exec(text);
    return { rgb: [Number(m[1]), Number(m[2]), Number(m[3])], alpha: m[4] === undefined ? 1 : Number(m[4]) };
  };
  const channel = (v) => {
    v /= 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  };
  const luminance = ([r, g, b]) => 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  const under = (element) => {
    for (let e = element; e !== null; e = e.parentElement) {
      const colour = parse(getComputedStyle(e).backgroundColor);
      if (colour.alpha === 1) return colour.rgb;
    }
    return matchMedia("(prefers-color-scheme: dark)").matches ? [18, 18, 18] : [255, 255, 255];
  };
  const offenders = [];
  let checked = 0;
  for (const element of document.querySelectorAll("#rooms *")) {
    const text = [...element.childNodes].filter((n) => n.nodeType === Node.TEXT_NODE)
      .map((n) => n.textContent.trim()).join("").trim();
    if (text === "" || element.matches(":disabled") || !element.checkVisibility()) continue;
    const box = element.getBoundingClientRect();
    if (box.width <= 1 || box.height <= 1) continue;
    const bg = under(element);
    const fg = parse(getComputedStyle(element).color);
    const rgb = fg.rgb.map((v, i) => v * fg.alpha + bg[i] * (1 - fg.alpha));
    const [x, y] = [luminance(rgb), luminance(bg)].sort((a, b) => b - a);
    const ratio = (x + 0.05) / (y + 0.05);
    checked++;
    if (ratio < 4.5) offenders.push(element.className + " " + JSON.stringify(text) + " " + ratio.toFixed(2));
  }
  return { checked, offenders };
})()`;

browserTest("several rooms at once fit a 360 px phone and read well", async (t) => {
  await using server = await startPageServer();
  await using browser = await launchChromium();
  await using phone = await browser.newPage({ width: 360, height: 640 });
  await using tom = await roomClient(server.base, { name: "Tom", room: "first" });
  await using _lou = await roomClient(server.base, { name: "Lou", room: "lounge" });
  await joinPage(phone, { base: server.base, name: "Pia", room: "first" });
  for (const room of ["second", "a-rather-long-room-name", "fourth"]) {
    await joinFromForm(phone, room);
  }
  tom.sendJson({ type: "message", message: "psst" });
  await phone.waitFor(`${unread("first")} === "1"`);
  await phone.click("#more-rooms summary");
  await phone.waitFor(`document.querySelector('#other-rooms [data-room="lounge"]') !== null`);

  await t.step("the strip and its drop-down fit", async () => {
    const layout = await phone.evaluate<{ page: number; outside: string[]; clipped: string[] }>(
      `({
        page: document.documentElement.scrollWidth,
        outside: [...document.querySelectorAll("#rooms, #more-rooms summary, #other-rooms-panel")]
          .filter((e) => e.checkVisibility())
          .filter((e) => { const r = e.getBoundingClientRect(); return r.left < 0 || r.right > 360; })
          .map((e) => e.id || e.tagName),
        clipped: [...document.querySelectorAll("#room-list .room-button")]
          .filter((e) => e.scrollWidth > e.clientWidth)
          .map((e) => e.textContent),
      })`,
    );
    assert.ok(layout.page <= 360, `the page scrolls sideways: ${layout.page} px`);
    assert.deepEqual(layout.outside, [], "the room list does not fit");
    assert.deepEqual(layout.clipped, [], "room names clipped in the strip");
  });

  await t.step("every text of the strip passes WCAG AA, light and dark", async () => {
    for (const scheme of ["light", "dark"]) {
      await phone.session.send("Emulation.setEmulatedMedia", {
        features: [{ name: "prefers-color-scheme", value: scheme }],
      });
      await phone.waitFor(`matchMedia("(prefers-color-scheme: ${scheme})").matches`);
      const { checked, offenders } = await phone.evaluate<
        { checked: number; offenders: string[] }
      >(ROOMS_LOW_CONTRAST);
      // Four rooms, their Leave controls, a badge, the summary, a room to join and its count.
      assert.ok(checked >= 11, `${scheme}: only ${checked} texts checked`);
      assert.deepEqual(offenders, [], `${scheme}: under 4.5:1`);
    }
  });
});
