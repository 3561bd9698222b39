/**
 * The chat page's reading and layout in real headless Chromium (issue 20):
 * right-to-left text, WCAG AA contrast in light and dark mode, a quiet status
 * live region, private headers that name the sender once, and a 360 px phone
 * where the log stays pinned and online names are not clipped.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { Page } from "./helpers/cdp.ts";
import {
  joinPage,
  js,
  type PageServer,
  roomClient,
  startPageServer,
  statusIs,
} from "./helpers/chat_page.ts";
import { browserTest, launchChromium } from "./helpers/chromium.ts";
import { eventually } from "./helpers/eventually.ts";

/** The page's server: the heartbeat runs, and test clients may post 30 messages at once. */
function startServer(): Promise<PageServer> {
  return startPageServer({
    HEARTBEAT_INTERVAL_MS: "1000",
    HEARTBEAT_TIMEOUT_MS: "10000",
    RATE_LIMIT_BURST: "100",
  });
}

// ---------------------------------------------------------------------------
// Page helpers (the few of browser_test.ts this file needs)

/** Puts text in the composer and presses Enter. */
async function say(page: Page, text: string): Promise<void> {
  await page.evaluate(`document.getElementById("message").value = ${js(text)}`);
  await page.press("Enter", { selector: "#message" });
}

function hasChat(text: string): string {
  return `[...document.querySelectorAll('#messages [data-testid="message"] .text')]
    .some((e) => e.textContent === ${js(text)})`;
}

function setColorScheme(page: Page, scheme: "light" | "dark"): Promise<unknown> {
  return page.session.send("Emulation.setEmulatedMedia", {
    features: [{ name: "prefers-color-scheme", value: scheme }],
  });
}

/**
 * Every visible element with a text node of its own whose text has less than
 * 4.5:1 contrast against what lies under it. The background is the first
 * non-transparent one up the ancestors, translucent ones blended onto theirs;
 * a gradient counts as each of its stops. The text colour's alpha and the
 * opacity of the element and its ancestors blend it onto that background.
 * Disabled controls are left out: WCAG 1.4.3 exempts inactive components.
 */
const LOW_CONTRAST = `(() => {
  const parse = (text) => {
    const m = /rgba?\\(\\s*([\\d.]+)[,\\s]+([\\d.]+)[,\\s]+([\\d.]+)(?:\\s*[,/]\\s*([\\d.]+)(%?))?\\s*\\)/
      .exec(text);
    if (m === null) throw new Error("Unparsed colour: " + text);
    const alpha = m[4] === undefined ? 1 : Number(m[4]) / (m[5] === "%" ? 100 : 1);
    return { rgb: [Number(m[1]), Number(m[2]), Number(m[3])], alpha };
  };
  const blend = (top, alpha, under) => top.map((v, i) => v * alpha + under[i] * (1 - alpha));
  const canvas = matchMedia("(prefers-color-scheme: dark)").matches ? [18, 18, 18] : [255, 255, 255];
  // Every opaque colour that can be under the element's text.
  const under = (element) => {
    if (element === null) return [canvas];
    const style = getComputedStyle(element);
    const image = style.backgroundImage;
    if (image.includes("gradient(")) {
      const stops = [...image.matchAll(/rgba?\\([^)]*\\)/g)].map((m) => parse(m[0]));
      const below = under(element.parentElement);
      return stops.flatMap((s) => below.map((b) => blend(s.rgb, s.alpha, b)));
    }
    const colour = parse(style.backgroundColor);
    if (colour.alpha === 0) return under(element.parentElement);
    if (colour.alpha === 1) return [colour.rgb];
    return under(element.parentElement).map((b) => blend(colour.rgb, colour.alpha, b));
  };
  const channel = (v) => {
    v /= 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  };
  const luminance = ([r, g, b]) => 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  const ratio = (a, b) => {
    const [x, y] = [luminance(a), luminance(b)].sort((p, q) => q - p);
    return (x + 0.05) / (y + 0.05);
  };
  const offenders = [];
  let checked = 0;
  for (const element of document.body.querySelectorAll("*")) {
    const text = [...element.childNodes]
      .filter((n) => n.nodeType === Node.TEXT_NODE)
      .map((n) => n.textContent.trim())
      .join(" ")
      .trim();
    if (text === "" || element.matches(":disabled")) continue;
    if (!element.checkVisibility({ visibilityProperty: true })) continue;
    const box = element.getBoundingClientRect();
    if (box.width <= 1 || box.height <= 1) continue; // visually hidden, for screen readers
    let opacity = 1;
    for (let e = element; e !== null; e = e.parentElement) {
      opacity *= Number(getComputedStyle(e).opacity);
    }
    const colour = parse(getComputedStyle(element).color);
    let worst = Infinity;
    for (const bg of under(element)) {
      worst = Math.min(worst, ratio(blend(colour.rgb, colour.alpha * opacity, bg), bg));
    }
    checked++;
    if (worst < 4.5) {
      const name = element.tagName.toLowerCase() + (element.id ? "#" + element.id : "") +
        (element.className && typeof element.className === "string"
          ? "." + element.className.trim().split(/\\s+/).join(".")
          : "");
      const where = element.closest("li")?.className ?? "";
      offenders.push(name + (where ? " in li." + where.split(" ").join(".") : "") +
        " " + JSON.stringify(text.slice(0, 30)) + " " + worst.toFixed(2) + ":1");
    }
  }
  return { checked, offenders };
})()`;

async function assertContrast(page: Page, label: string): Promise<void> {
  for (const scheme of ["light", "dark"] as const) {
    await setColorScheme(page, scheme);
    await page.waitFor(`matchMedia("(prefers-color-scheme: ${scheme})").matches`);
    const { checked, offenders } = await page.evaluate<{ checked: number; offenders: string[] }>(
      LOW_CONTRAST,
    );
    assert.ok(checked > 10, `${label}, ${scheme}: only ${checked} elements checked`);
    assert.deepEqual(
      offenders,
      [],
      `${label}, ${scheme}: text under 4.5:1:\n  ${offenders.join("\n  ")}`,
    );
  }
  await setColorScheme(page, "light");
}

/** Whether the last item of the log ends inside the log's visible box. */
const LAST_MESSAGE_VISIBLE = `(() => {
  const log = document.getElementById("messages");
  const last = log.lastElementChild.getBoundingClientRect();
  return last.bottom <= log.getBoundingClientRect().bottom + 0.5;
})()`;

// ---------------------------------------------------------------------------

browserTest("chat page reads well: direction, contrast, status, phone layout", async (t) => {
  const running = await startServer();
  const base = `http://127.0.0.1:${running.port}`;
  try {
    await using browser = await launchChromium();
    const viewport = { width: 800, height: 600 };

    await t.step(
      "right-to-left text gets its own direction; inputs follow what is typed",
      async () => {
        await using page = await browser.newPage(viewport);
        await joinPage(page, { base: base, name: "Rana", room: "bidi" });
        const arabic = "مرحبا بالعالم!";
        const hebrew = "שלום עולם!";
        const latin = "Hello world!";
        for (const text of [arabic, hebrew, latin]) {
          await say(page, text);
          await page.waitFor(hasChat(text));
        }
        const directions = await page.evaluate<Record<string, string>>(`Object.fromEntries(
          [...document.querySelectorAll('#messages [data-testid="message"] .text')]
            .map((e) => [e.textContent, getComputedStyle(e).direction]))`);
        assert.deepEqual(directions, { [arabic]: "rtl", [hebrew]: "rtl", [latin]: "ltr" });
        const inputs = await page.evaluate<Record<string, string | null>>(`Object.fromEntries(
          ["username", "room", "message", "rename-input", "switch-input"]
            .map((id) => [id, document.getElementById(id).getAttribute("dir")]))`);
        assert.deepEqual(inputs, {
          username: "auto",
          room: "auto",
          message: "auto",
          "rename-input": "auto",
          "switch-input": "auto",
        });
        await page.evaluate(`document.getElementById("message").value = ${js(arabic)}`);
        assert.equal(
          await page.evaluate(`getComputedStyle(document.getElementById("message")).direction`),
          "rtl",
        );
      },
    );

    await t.step("the first screen is neutral: not connected, not a red error", async () => {
      await using page = await browser.newPage(viewport);
      await page.goto(`${base}/`);
      const first = await page.evaluate<Record<string, string>>(`(() => {
          const status = document.getElementById("status");
          return {
            state: status.dataset.state,
            text: status.textContent.trim(),
            dot: getComputedStyle(status.querySelector(".status-dot")).backgroundColor,
          };
        })()`);
      assert.notEqual(first.state, "disconnected", js(first));
      assert.equal(first.text, "Not connected");
      assert.notEqual(first.dot, "rgb(239, 68, 68)", `the dot is red: ${js(first)}`);
      const [r, g, b] = first.dot!.match(/\d+/g)!.map(Number);
      assert.ok(!(r! > 150 && g! < 100 && b! < 100), `the dot is red: ${js(first)}`);
    });

    await t.step("every text passes WCAG AA (4.5:1), light and dark", async () => {
      await using ann = await browser.newPage(viewport);
      await ann.goto(`${base}/`);
      await assertContrast(ann, "first screen");
      await joinPage(ann, { base: base, name: "Ann", room: "contrast" });
      await using ben = await roomClient(base, { name: "Ben", room: "contrast" });
      await ann.waitFor(`document.querySelector('#user-list [data-user="Ben"]') !== null`);
      await say(ann, "Hello from Ann");
      ben.sendJson({ type: "message", message: "Hello from Ben" });
      ben.sendJson({ type: "private", to: "Ann", message: "Psst, Ann" });
      await ann.waitFor(hasChat("Psst, Ann"));
      await ann.click(`#user-list [data-user="Ben"]`);
      await ann.waitFor(`!document.getElementById("private-target").hidden`);
      await say(ann, "Psst, Ben");
      await ann.waitFor(hasChat("Psst, Ben"));
      await ann.waitFor(hasChat("Hello from Ben"));
      await ann.waitFor(hasChat("Hello from Ann"));
      // A form error too: a name with characters names cannot have.
      await ann.click("#rename-button");
      await ann.evaluate(`document.getElementById("rename-input").value = "!!!"`);
      await ann.press("Enter", { selector: "#rename-input" });
      await ann.waitFor(`document.getElementById("rename-error").textContent !== ""`);
      // Notices of every kind the page makes: the one it shows, plus its warning and error look.
      await ann.evaluate(`(() => {
          const log = document.getElementById("messages");
          const notice = log.querySelector('[data-testid="system"]');
          for (const kind of ["notice", "warning", "error"]) {
            const copy = notice.cloneNode(true);
            copy.className = "message system local " + kind;
            copy.querySelector(".text").textContent = "A " + kind + " notice";
            log.append(copy);
          }
        })()`);
      const kinds = await ann.evaluate<string[]>(
        `[...document.querySelectorAll("#messages > li")].map((e) => e.className)`,
      );
      for (const kind of ["own", "other", "private own", "private other", "system"]) {
        assert.ok(kinds.some((k) => k.includes(kind)), `no ${kind} message in ${js(kinds)}`);
      }
      await assertContrast(ann, "chat");
    });

    await t.step("a private message names its sender once", async () => {
      await using ann = await browser.newPage(viewport);
      await joinPage(ann, { base: base, name: "Anneliese", room: "whisper" });
      await using bea = await browser.newPage(viewport);
      await joinPage(bea, { base: base, name: "Bea", room: "whisper" });
      await ann.waitFor(`document.querySelector('#user-list [data-user="Bea"]') !== null`);
      await ann.click(`#user-list [data-user="Bea"]`);
      await ann.waitFor(`!document.getElementById("private-target").hidden`);
      await say(ann, "Only for you");
      await bea.waitFor(hasChat("Only for you"));
      await ann.waitFor(hasChat("Only for you"));
      const bubble = (page: Page) =>
        page.evaluate<string>(`document.querySelector(
            '#messages [data-private="true"] .bubble').textContent`);
      const count = (text: string, name: string) => text.split(name).length - 1;
      const received = await bubble(bea);
      const sent = await bubble(ann);
      assert.equal(count(received, "Anneliese"), 1, `received: ${js(received)}`);
      assert.match(received, /private/i);
      assert.equal(count(sent, "Bea"), 1, `sent: ${js(sent)}`);
      assert.match(sent, /private/i);
    });

    await t.step("a phone (360 px): the log stays pinned, online names are whole", async () => {
      // The others first: the phone's welcome lists them.
      const long = "Bartholomew Fitzgerald-Smythe";
      await using bart = await roomClient(base, { name: long, room: "mobile" });
      await using max = await roomClient(base, {
        name: "Maximiliana Featherstonehaugh",
        room: "mobile",
      });
      await using phone = await browser.newPage({ width: 360, height: 640 });
      await joinPage(phone, { base: base, name: "Pat", room: "mobile" });
      await phone.waitFor(`document.getElementById("user-count").textContent === "3"`);
      for (let i = 1; i <= 30; i++) {
        (i % 2 ? bart : max).sendJson({ type: "message", message: `Line ${i}` });
      }
      await phone.waitFor(hasChat("Line 30"));
      await phone.waitFor(LAST_MESSAGE_VISIBLE);

      await phone.click(`#user-list [data-user=${js(long)}]`);
      await phone.waitFor(`!document.getElementById("private-target").hidden`);
      await phone.waitFor(LAST_MESSAGE_VISIBLE);
      await phone.click("#private-cancel");
      await phone.waitFor(`document.getElementById("private-target").hidden`);
      await phone.waitFor(LAST_MESSAGE_VISIBLE);

      await phone.click("#rename-button");
      await phone.waitFor(`!document.getElementById("rename-form").hidden`);
      await phone.waitFor(LAST_MESSAGE_VISIBLE);

      const clipped = await phone.evaluate<string[]>(`
          [...document.querySelectorAll("#user-list .user-name")]
            .filter((e) => e.scrollWidth > e.clientWidth)
            .map((e) => e.textContent + " " + e.scrollWidth + ">" + e.clientWidth)`);
      assert.deepEqual(clipped, [], "user names clipped in the online strip");
    });

    await t.step(
      "reconnecting: the live region changes with the state, not every second",
      async () => {
        const own = await startServer();
        let stopped = false;
        try {
          await using page = await browser.newPage(viewport);
          await joinPage(page, {
            base: `http://127.0.0.1:${own.port}`,
            name: "Rita",
            room: "lobby",
          });
          await own[Symbol.asyncDispose]();
          stopped = true;
          // Failed attempts lengthen the backoff; wait for a countdown of at least 4 s,
          // so no attempt (a change of state) falls in the 2.5 s watched below.
          const longWait = `${statusIs("reconnecting")} &&
              Number(/in (\\d+) s/.exec(document.getElementById("status").textContent)?.[1]) >= 4`;
          await eventually("a countdown of 4 s or more", () => page.evaluate<boolean>(longWait), {
            timeoutMs: 90_000,
            intervalMs: 50,
          });
          // Watched in the page: every mutation, and a look every 100 ms, for 2.5 s.
          const seen = await page.evaluate<{ live: string[]; shown: string[] }>(`(() => {
              const regions = [...document.querySelectorAll(
                '.topbar [role="status"], .topbar [aria-live]:not([aria-live="off"])')];
              // What a screen reader gets: the text outside aria-hidden parts.
              const spoken = (node) => {
                if (node.nodeType === Node.TEXT_NODE) return node.textContent;
                if (node.nodeType !== Node.ELEMENT_NODE) return "";
                if (node.getAttribute("aria-hidden") === "true" || node.hidden) return "";
                return [...node.childNodes].map(spoken).join("");
              };
              const live = new Set();
              const shown = new Set();
              const look = () => {
                live.add(regions.map((r) => spoken(r).trim()).join(" | "));
                shown.add(document.getElementById("status").innerText.trim());
              };
              look();
              const observer = new MutationObserver(look);
              for (const r of regions) {
                observer.observe(r, { subtree: true, childList: true, characterData: true });
              }
              const timer = setInterval(look, 100);
              return new Promise((resolve) => setTimeout(() => {
                observer.disconnect();
                clearInterval(timer);
                look();
                resolve({ live: [...live], shown: [...shown] });
              }, 2500));
            })()`);
          assert.ok(seen.shown.length >= 2, `the countdown did not tick: ${js(seen)}`);
          assert.equal(seen.live.length, 1, `the live region changed: ${js(seen)}`);
          assert.match(seen.live[0]!, /Reconnecting/);
        } finally {
          if (!stopped) await own[Symbol.asyncDispose]();
        }
      },
    );
  } finally {
    await running[Symbol.asyncDispose]();
  }
});
