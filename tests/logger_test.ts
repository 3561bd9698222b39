import assert from "node:assert/strict";
import { createLogger } from "../chat/logger.ts";

const JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLWJ5dGVz";

function capture() {
  const lines: string[] = [];
  return { lines, logger: createLogger({ level: "debug", write: (line) => lines.push(line) }) };
}

Deno.test("the logger redacts token query values in every string field", async (t) => {
  const cases: [string, unknown, unknown][] = [
    [
      "token in a URL",
      "http://h/ws/chat?room=a&token=abc123&batch=1",
      "http://h/ws/chat?room=a&token=[redacted]&batch=1",
    ],
    ["the first parameter", "/ws?token=abc123", "/ws?token=[redacted]"],
    ["access_token", "/api/rooms?access_token=abc123#x", "/api/rooms?access_token=[redacted]#x"],
    ["upper case", "/ws?TOKEN=abc123", "/ws?TOKEN=[redacted]"],
    [
      "inside an error text",
      "TypeError at /ws?token=abc123 (boom)",
      "TypeError at /ws?token=[redacted] (boom)",
    ],
    ["nested", { request: { url: "/ws?token=abc123" } }, {
      request: { url: "/ws?token=[redacted]" },
    }],
    ["a JWT outside a URL", `bad bearer.${JWT} offered`, "bad bearer.[redacted] offered"],
    ["a parameter that only ends in token", "/x?notoken=keep", "/x?notoken=keep"],
  ];
  for (const [name, value, expected] of cases) {
    await t.step(name, () => {
      const { lines, logger } = capture();
      logger.warn("something", { value });
      assert.equal(lines.length, 1);
      assert.deepEqual(JSON.parse(lines[0]!).value, expected);
    });
  }
  await t.step("the event name and other fields are kept", () => {
    const { lines, logger } = capture();
    logger.info("request_failed", { status: 500, remote: "10.0.0.1" });
    const line = JSON.parse(lines[0]!);
    assert.equal(line.event, "request_failed");
    assert.equal(line.status, 500);
    assert.equal(line.remote, "10.0.0.1");
    assert.equal(line.level, "info");
  });
});
