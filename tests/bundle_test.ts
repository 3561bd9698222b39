import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url);

Deno.test("static/chat_client.js is the bundle of client/mod.ts as it is now (deno task build)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const out = `${dir}/chat_client.js`;
    // The arguments of deno.json's build task, with another output file.
    const tasks = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT))).tasks;
    const args = (tasks.build as string).split(" ").slice(1)
      .map((arg) => (arg === "static/chat_client.js" ? out : arg));
    const { code, stderr } = await new Deno.Command(Deno.execPath(), {
      args,
      cwd: ROOT,
      stdout: "null",
      stderr: "piped",
    }).output();
    assert.equal(code, 0, new TextDecoder().decode(stderr));
    const fresh = await Deno.readTextFile(out);
    const committed = await Deno.readTextFile(new URL("static/chat_client.js", ROOT));
    assert.ok(fresh === committed, "static/chat_client.js is stale: run deno task build");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the page takes the protocol from the client library, not from a copy", async () => {
  const page = await Deno.readTextFile(new URL("static/client.js", ROOT));
  assert.match(page, /from "\.\/chat_client\.js"/);
  // What the library owns: close codes, backoff, the name rules, the socket itself.
  for (const copy of [/\b4009\b/, /new WebSocket\(/, /\\p\{L\}/, /Math\.random\(\)/]) {
    assert.doesNotMatch(page, copy);
  }
});
