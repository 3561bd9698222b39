import assert from "node:assert/strict";
import { browserTest, launchChromium } from "./helpers/chromium.ts";

const PAGE = `<!doctype html>
<html>
<head><meta charset="utf-8"><title>CDP helper self-test</title></head>
<body>
  <input id="message" autocomplete="off">
  <button id="send" type="button">Send</button>
  <div id="output"></div>
  <div id="entered"></div>
  <script>
    const message = document.getElementById("message");
    window.inputEvents = 0;
    message.addEventListener("input", () => window.inputEvents++);
    message.addEventListener("keydown", (event) => {
      if (event.key === "Enter") document.getElementById("entered").textContent = message.value;
    });
    document.getElementById("send").addEventListener("click", () => {
      document.getElementById("output").textContent = message.value;
    });
  </script>
</body>
</html>`;

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

function serveTestPage(): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, (request) => {
    if (new URL(request.url).pathname !== "/") return new Response(null, { status: 404 });
    return new Response(PAGE, { headers: { "content-type": "text/html; charset=utf-8" } });
  });
}

browserTest("chromium helper drives a page like a user", async (t) => {
  const server = serveTestPage();
  const baseUrl = `http://127.0.0.1:${server.addr.port}/`;
  try {
    await using browser = await launchChromium();

    await t.step("typing and clicking updates the page", async () => {
      await using page = await browser.newPage({ width: 800, height: 600 });
      await page.goto(baseUrl);
      await page.type("#message", "hello world");
      await page.click("#send");
      await page.waitFor(`document.getElementById("output").textContent === "hello world"`);
      assert.equal(
        await page.evaluate("document.getElementById('output').textContent"),
        "hello world",
      );
      // One input event per key shows the text came from key events, not a value assignment.
      assert.equal(await page.evaluate("window.inputEvents"), "hello world".length);
      assert.deepEqual(page.dialogs, []);
      assert.deepEqual(page.consoleErrors, []);
    });

    await t.step("pressing Enter dispatches a key event to the focused element", async () => {
      await using page = await browser.newPage();
      await page.goto(baseUrl);
      await page.type("#message", "sent with enter");
      await page.press("Enter");
      await page.waitFor(`document.getElementById("entered").textContent === "sent with enter"`);
    });

    await t.step("markup typed by the user is shown as text and opens no dialog", async () => {
      await using page = await browser.newPage();
      await page.goto(baseUrl);
      const payload = `<img src=x onerror="alert('xss')">`;
      await page.type("#message", payload);
      await page.click("#send");
      await page.waitFor(
        `document.getElementById("output").textContent === ${JSON.stringify(payload)}`,
      );
      assert.equal(await page.evaluate("document.querySelectorAll('#output *').length"), 0);
      assert.deepEqual(page.dialogs, []);
    });

    await t.step("evaluate returns values and rethrows page exceptions", async () => {
      await using page = await browser.newPage();
      assert.equal(await page.evaluate<number>("1 + 1"), 2);
      assert.deepEqual(await page.evaluate("Promise.resolve({ a: [1, 'b'] })"), { a: [1, "b"] });
      assert.equal(await page.evaluate("undefined"), undefined);
      await assert.rejects(
        page.evaluate("missingVariable"),
        /ReferenceError: missingVariable is not defined/,
      );
    });

    await t.step("CDP errors and missing elements reject with a message", async () => {
      await using page = await browser.newPage();
      await assert.rejects(page.session.send("No.suchMethod"), /No\.suchMethod.*wasn't found/);
      await assert.rejects(page.click("#missing"), /No element matches selector: #missing/);
    });

    await t.step("waitFor rejects with the expression on timeout", async () => {
      await using page = await browser.newPage();
      await assert.rejects(
        page.waitFor("window.neverSet === 42", { timeoutMs: 200 }),
        /waiting for: window\.neverSet === 42/,
      );
    });

    await t.step("screenshot writes a PNG file", async () => {
      await using page = await browser.newPage({ width: 320, height: 200 });
      await page.goto(baseUrl);
      const path = await Deno.makeTempFile({ prefix: "cdp_screenshot_", suffix: ".png" });
      try {
        await page.screenshot(path);
        const bytes = await Deno.readFile(path);
        assert.deepEqual([...bytes.subarray(0, PNG_MAGIC.length)], PNG_MAGIC);
      } finally {
        await Deno.remove(path);
      }
    });

    await t.step("dialogs are recorded and dismissed", async () => {
      await using page = await browser.newPage();
      await page.goto(baseUrl);
      await page.evaluate(`alert("hi there")`);
      assert.equal(await page.evaluate(`confirm("sure?")`), false);
      assert.deepEqual(page.dialogs, [
        { type: "alert", message: "hi there" },
        { type: "confirm", message: "sure?" },
      ]);
    });

    await t.step("uncaught exceptions and console.error are recorded", async () => {
      await using page = await browser.newPage();
      await page.goto(baseUrl);
      await page.evaluate(`setTimeout(() => { throw new Error("boom"); }, 0)`);
      // A later timer resolves after the throwing one, and CDP delivers events in order.
      await page.evaluate("new Promise((resolve) => setTimeout(resolve, 20))");
      await page.evaluate(`console.error("bad", 42)`);
      assert.equal(page.consoleErrors.length, 2);
      assert.match(page.consoleErrors[0] ?? "", /Error: boom/);
      assert.equal(page.consoleErrors[1], "bad 42");
    });

    await t.step("pages in separate contexts do not share localStorage", async () => {
      await using alice = await browser.newPage();
      await using bob = await browser.newPage({ width: 400, height: 300 });
      await alice.goto(baseUrl);
      await bob.goto(baseUrl);
      await alice.evaluate(`localStorage.setItem("user", "alice")`);
      assert.equal(await alice.evaluate(`localStorage.getItem("user")`), "alice");
      assert.equal(await bob.evaluate(`localStorage.getItem("user")`), null);
      assert.deepEqual(await bob.evaluate("[innerWidth, innerHeight]"), [400, 300]);
    });
  } finally {
    await server.shutdown();
  }
});
