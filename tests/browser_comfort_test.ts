/**
 * Reading comfort in real headless Chromium (issue 20): one person's messages
 * in a row under one header, a "Today" separator, links that are links (and
 * nothing else is), and one's own messages shown at once as pending, then
 * stored exactly once or failed with the reason and a Retry button.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { Page } from "./helpers/cdp.ts";
import { joinPage, js, type PageServer, startPageServer, statusIs } from "./helpers/chat_page.ts";
import { browserTest, launchChromium } from "./helpers/chromium.ts";
import { TestClient } from "./helpers/ws_client.ts";

const ROOM = "comfort";

async function say(page: Page, text: string): Promise<void> {
  await page.type("#message", text);
  await page.press("Enter");
}

/** The chat items (not notices) with this text. */
function items(text: string): string {
  return `[...document.querySelectorAll('#messages [data-testid="message"]')]
    .filter((e) => e.querySelector(".text")?.textContent === ${js(text)})`;
}

function hasChat(text: string): string {
  return `${items(text)}.length > 0`;
}

/** Whether an element is on screen (not hidden, not a 1 px screen-reader-only box). */
const SHOWN = `((e) => e !== null && e.checkVisibility({ visibilityProperty: true }) &&
  e.getBoundingClientRect().width > 1)`;

/** Each chat item's text and the sender its header shows (null: no header on screen). */
function headers(page: Page): Promise<[string, string | null][]> {
  return page.evaluate(`[...document.querySelectorAll('#messages [data-testid="message"]')]
    .map((li) => {
      const sender = li.querySelector(".sender");
      return [li.querySelector(".text").textContent, ${SHOWN}(sender) ? sender.textContent : null];
    })`);
}

/** The state of the one item with this text: its data-state, what it says, its buttons. */
function stateOf(
  page: Page,
  text: string,
): Promise<{ count: number; state: string; said: string; buttons: string[] }> {
  return page.evaluate(`(() => {
    const found = ${items(text)};
    const item = found[0];
    return {
      count: found.length,
      state: item?.dataset.state ?? "",
      said: item?.textContent ?? "",
      buttons: [...(item?.querySelectorAll("button") ?? [])].map((b) => b.textContent.trim()),
    };
  })()`);
}

/**
 * Texts inside the item with this text under 4.5:1 against the first opaque background
 * under them, in light and dark: the pending and failed looks, which only this test sees.
 */
async function lowContrast(page: Page, text: string): Promise<string[]> {
  const found: string[] = [];
  for (const scheme of ["light", "dark"]) {
    await page.session.send("Emulation.setEmulatedMedia", {
      features: [{ name: "prefers-color-scheme", value: scheme }],
    });
    await page.waitFor(`matchMedia("(prefers-color-scheme: ${scheme})").matches`);
    found.push(
      ...await page.evaluate<string[]>(`(() => {
      const rgb = (c) => c.match(/[\\d.]+/g).map(Number);
      const channel = (v) => (v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
      const lum = ([r, g, b]) => 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
      const under = (e) => {
        for (; e !== null; e = e.parentElement) {
          const c = rgb(getComputedStyle(e).backgroundColor);
          if (c[3] === undefined || c[3] === 1) return c.slice(0, 3);
        }
        return [255, 255, 255];
      };
      const out = [];
      for (const e of ${items(text)}[0].querySelectorAll("*")) {
        const own = [...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim() !== "");
        if (!own || e.getBoundingClientRect().width <= 1) continue;
        let opacity = 1;
        for (let p = e; p !== null; p = p.parentElement) opacity *= Number(getComputedStyle(p).opacity);
        const bg = under(e);
        const fg = rgb(getComputedStyle(e).color).slice(0, 3).map((v, i) => v * opacity + bg[i] * (1 - opacity));
        const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
        const ratio = (hi + 0.05) / (lo + 0.05);
        if (ratio < 4.5) out.push("${scheme} " + e.className + " " + e.textContent.trim() + " " + ratio.toFixed(2));
      }
      return out;
    })()`),
    );
  }
  await page.session.send("Emulation.setEmulatedMedia", { features: [] });
  return found;
}

browserTest("reading comfort: groups, days, links, pending and failed messages", async (t) => {
  let running: PageServer = await startPageServer();
  const base = `http://127.0.0.1:${running.port}`;
  try {
    await using browser = await launchChromium();
    const viewport = { width: 900, height: 700 };
    await using alice = await browser.newPage(viewport);
    await using bob = await browser.newPage(viewport);
    await joinPage(alice, { base, name: "Alice", room: ROOM });
    await joinPage(bob, { base, name: "Bob", room: ROOM });
    await alice.waitFor(`document.querySelector('#user-list [data-user="Bob"]') !== null`);

    await t.step("one person's messages in a row share one header", async () => {
      for (const text of ["First of three", "Second of three", "Third of three"]) {
        await say(alice, text);
      }
      await bob.waitFor(hasChat("Third of three"));
      await say(bob, "Bob answers");
      for (const page of [alice, bob]) {
        await page.waitFor(`${items("Bob answers")}[0]?.dataset.state !== "pending"`);
        await page.waitFor(`${items("Third of three")}[0]?.dataset.state !== "pending"`);
        assert.deepEqual(await headers(page), [
          ["First of three", "Alice"],
          ["Second of three", null],
          ["Third of three", null],
          ["Bob answers", "Bob"],
        ]);
        // The ones without a header still tell their time, and who wrote them to screen readers.
        const rest = await page.evaluate<{ time: string; title: string; sender: string }>(
          `(() => {
            const li = ${items("Second of three")}[0];
            const time = li.querySelector("time");
            return { time: time.textContent, title: time.title, sender: li.querySelector(".sender").textContent };
          })()`,
        );
        assert.match(rest.time, /\d{1,2}.\d{2}/);
        assert.notEqual(rest.title, "");
        assert.equal(rest.sender, "Alice");
      }
    });

    await t.step('a "Today" separator comes once, before the first of the day', async () => {
      for (const page of [alice, bob]) {
        const days = await page.evaluate<{ texts: string[]; first: string }>(`({
            texts: [...document.querySelectorAll('#messages [data-testid="day"]')]
              .map((e) => e.textContent),
            first: document.getElementById("messages").firstElementChild.dataset.testid,
          })`);
        assert.deepEqual(days, { texts: ["Today"], first: "day" });
      }
    });

    await t.step(
      "day labels: Today, Yesterday, else weekday and date (year if not this one)",
      async () => {
        const labels = await alice.evaluate<Record<string, string[]>>(`(async () => {
          const { dayLabel } = await import("/static/client.js");
          const now = new Date();
          const at = (days, years = 0) =>
            new Date(now.getFullYear() - years, now.getMonth(), now.getDate() - days, 12);
          const long = { weekday: "long", day: "numeric", month: "long" };
          return {
            today: [dayLabel(at(0), now), "Today"],
            yesterday: [dayLabel(at(1), now), "Yesterday"],
            older: [dayLabel(at(3), now), at(3).toLocaleDateString(undefined, at(3).getFullYear() === now.getFullYear() ? long : { ...long, year: "numeric" })],
            lastYear: [dayLabel(at(0, 1), now), at(0, 1).toLocaleDateString(undefined, { ...long, year: "numeric" })],
          };
        })()`);
        for (const [name, [got, wanted]] of Object.entries(labels)) {
          assert.equal(got, wanted, name);
        }
        assert.match(
          labels.lastYear?.[0] ?? "",
          new RegExp(String(new Date().getFullYear() - 1)),
        );
      },
    );

    await t.step("http(s) links are links; javascript: and the rest stay text", async () => {
      const text = "see https://example.com/a_(b) and javascript:alert(1).";
      const more = "(https://example.com/p?q=1), http://x.test/. www.example.com data:text/html,hi";
      await say(alice, text);
      await say(alice, more);
      const links = (page: Page, said: string) =>
        page.evaluate<{ text: string; links: Record<string, string | null>[] }>(`(() => {
            const p = ${items(said)}[0].querySelector(".text");
            return {
              text: p.textContent,
              links: [...p.querySelectorAll("a")].map((a) => ({
                href: a.getAttribute("href"),
                text: a.textContent,
                rel: a.getAttribute("rel"),
                target: a.getAttribute("target"),
              })),
            };
          })()`);
      for (const page of [bob, alice]) {
        await page.waitFor(hasChat(more));
        const first = await links(page, text);
        assert.equal(first.text, text);
        assert.equal(first.links.length, 1, js(first));
        const [link] = first.links;
        assert.equal(link!.href, "https://example.com/a_(b)");
        assert.equal(link!.text, "https://example.com/a_(b)");
        assert.equal(link!.target, "_blank");
        assert.deepEqual(
          ["noopener", "noreferrer"].filter((r) => !link!.rel!.split(/\s+/).includes(r)),
          [],
        );
        const second = await links(page, more);
        assert.equal(second.text, more);
        assert.deepEqual(second.links.map((l) => l.href), [
          "https://example.com/p?q=1",
          "http://x.test/",
        ]);
        assert.equal(
          await page.evaluate(
            `document.querySelectorAll('#messages a:not([href^="http"])').length`,
          ),
          0,
        );
      }
    });

    await t.step("sent while the server is down: pending, then stored exactly once", async () => {
      const port = running.port;
      await running[Symbol.asyncDispose]();
      await alice.waitFor(statusIs("reconnecting"));
      await bob.waitFor(statusIs("reconnecting"));
      const text = "Written while the server was down";
      await say(alice, text);
      await alice.waitFor(hasChat(text));
      const pending = await stateOf(alice, text);
      assert.equal(pending.count, 1);
      assert.equal(pending.state, "pending");
      assert.match(pending.said, /Sending…/);
      assert.deepEqual(await lowContrast(alice, text), []);
      running = await startPageServer({}, port);
      for (const page of [alice, bob]) {
        await page.evaluate(`dispatchEvent(new Event("online"))`);
        await page.waitFor(statusIs("connected"), { timeoutMs: 10_000 });
      }
      await alice.waitFor(`${items(text)}[0].dataset.state === "stored"`);
      await bob.waitFor(hasChat(text));
      // One more after it: had the first come back twice, its echo would be in by now.
      await say(alice, "And one after it");
      await alice.waitFor(`${items("And one after it")}[0]?.dataset.state === "stored"`);
      await bob.waitFor(hasChat("And one after it"));
      const stored = await stateOf(alice, text);
      assert.equal(stored.count, 1);
      assert.doesNotMatch(stored.said, /Sending…/);
      assert.equal((await stateOf(bob, text)).count, 1);
    });

    await t.step("refused by the server: failed, with the reason and Retry", async () => {
      // Carl is online, then gone with the server; he does not come back on his own.
      {
        await using carl = await TestClient.connect(
          `ws://127.0.0.1:${running.port}/ws/chat/Carl?room=${ROOM}`,
        );
        await carl.next("welcome");
        await alice.waitFor(`document.querySelector('#user-list [data-user="Carl"]') !== null`);
        await alice.click(`#user-list [data-user="Carl"]`);
        await alice.waitFor(`!document.getElementById("private-target").hidden`);
        const port = running.port;
        await running[Symbol.asyncDispose]();
        await alice.waitFor(statusIs("reconnecting"));
        running = await startPageServer({}, port);
      }
      const text = "Carl, are you there?";
      await say(alice, text);
      await alice.waitFor(`${items(text)}[0]?.dataset.state === "pending"`);
      await alice.evaluate(`dispatchEvent(new Event("online"))`);
      await alice.waitFor(statusIs("connected"), { timeoutMs: 10_000 });
      await alice.waitFor(`${items(text)}[0]?.dataset.state === "failed"`);
      const failed = await stateOf(alice, text);
      assert.equal(failed.count, 1);
      assert.match(failed.said, /User not online: Carl/);
      assert.deepEqual(failed.buttons, ["Retry"]);
      assert.deepEqual(await lowContrast(alice, text), []);

      // Carl is back: Retry sends the text again, as a new message.
      await using carl = await TestClient.connect(
        `ws://127.0.0.1:${running.port}/ws/chat/Carl?room=${ROOM}`,
      );
      await carl.next("welcome");
      await alice.evaluate(`${items(text)}[0].querySelector("button").click()`);
      const received = await carl.next((f) => f.type === "private" && f.message === text);
      assert.equal(received.username, "Alice");
      await alice.waitFor(`${items(text)}[0]?.dataset.state === "stored"`);
      const retried = await stateOf(alice, text);
      assert.equal(retried.count, 1);
      assert.deepEqual(retried.buttons, []);
      assert.ok(await alice.evaluate(`${items(text)}[0].dataset.private === "true"`));
    });
  } finally {
    await running[Symbol.asyncDispose]();
  }
});
