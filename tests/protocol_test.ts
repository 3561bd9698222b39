import assert from "node:assert/strict";
import {
  CloseCode,
  ErrorCode,
  isReservedName,
  normalizeName,
  parseClientMessage,
} from "../chat/protocol.ts";

const good: [string, string, unknown][] = [
  ["plain text is a message", "hello", { type: "message", message: "hello" }],
  ["a bare number is a plain message", "42", { type: "message", message: "42" }],
  ["text that only mentions JSON is a message", "x {y}", { type: "message", message: "x {y}" }],
  // Seed 02 shows any text that is not a JSON object as a message.
  ["text in brackets is a message", "[smile] hi", { type: "message", message: "[smile] hi" }],
  ["a broken array is a message", "[1,", { type: "message", message: "[1," }],
  ["a JSON array is a message", "[]", { type: "message", message: "[]" }],
  // Seed 03's client sends no type.
  ["no type but a message", '{"message":"hi"}', { type: "message", message: "hi" }],
  [
    "no type, a message and target_user is private (seed 03)",
    '{"message":"psst","target_user":"bob"}',
    { type: "private", to: "bob", message: "psst" },
  ],
  ["message frame", '{"type":"message","message":"hi"}', { type: "message", message: "hi" }],
  [
    "message to a room",
    '{"type":"message","message":"hi","room":"dev"}',
    { type: "message", message: "hi", room: "dev" },
  ],
  [
    "message with target_user is private (seed 03)",
    '{"type":"message","message":"psst","target_user":"bob"}',
    { type: "private", to: "bob", message: "psst" },
  ],
  [
    "message with to is private",
    '{"type":"message","message":"psst","to":"bob"}',
    { type: "private", to: "bob", message: "psst" },
  ],
  [
    "private frame",
    '{"type":"private","to":"bob","message":"psst","room":"dev"}',
    { type: "private", to: "bob", message: "psst", room: "dev" },
  ],
  ["rename", '{"type":"rename","name":"carol"}', { type: "rename", name: "carol" }],
  ["heartbeat", '{"type":"heartbeat"}', { type: "heartbeat" }],
  ["pong", '{"type":"pong"}', { type: "pong" }],
  ["join", '{"type":"join","room":"dev"}', { type: "join", room: "dev" }],
  [
    "join with since",
    '{"type":"join","room":"dev","since":7}',
    { type: "join", room: "dev", since: 7 },
  ],
  ["leave", '{"type":"leave","room":"dev"}', { type: "leave", room: "dev" }],
  ["users of the first room", '{"type":"users"}', { type: "users" }],
  ["users of a room", '{"type":"users","room":"dev"}', { type: "users", room: "dev" }],
  [
    "resume",
    '{"type":"resume","room":"dev","since":0}',
    { type: "resume", room: "dev", since: 0 },
  ],
  [
    "client-supplied username, sender, id and timestamp are dropped",
    '{"type":"message","message":"hi","username":"x","sender":"y","id":9,"timestamp":"t"}',
    { type: "message", message: "hi" },
  ],
  [
    "leading whitespace before JSON",
    '  {"type":"heartbeat"}',
    { type: "heartbeat" },
  ],
];

const bad: [string, string, string][] = [
  ["truncated JSON", '{"type":', ErrorCode.BadJson],
  ["no type and no message", '{"room":"dev"}', ErrorCode.BadMessage],
  ["no type and a numeric message", '{"message":5}', ErrorCode.BadMessage],
  ["numeric type", '{"type":1}', ErrorCode.BadMessage],
  ["null type", '{"type":null}', ErrorCode.BadMessage],
  ["unknown type", '{"type":"dance"}', ErrorCode.UnknownType],
  ["an inherited property as type", '{"type":"constructor"}', ErrorCode.UnknownType],
  ["__proto__ as type", '{"type":"__proto__"}', ErrorCode.UnknownType],
  ["toString as type", '{"type":"toString"}', ErrorCode.UnknownType],
  ["numeric message", '{"type":"message","message":5}', ErrorCode.BadMessage],
  ["missing message", '{"type":"message"}', ErrorCode.BadMessage],
  ["object message", '{"type":"message","message":{}}', ErrorCode.BadMessage],
  ["empty message", '{"type":"message","message":""}', ErrorCode.EmptyMessage],
  ["blank message", '{"type":"message","message":"  \\n "}', ErrorCode.EmptyMessage],
  ["empty plain text", "", ErrorCode.EmptyMessage],
  ["blank plain text", "   ", ErrorCode.EmptyMessage],
  ["numeric room", '{"type":"message","message":"hi","room":3}', ErrorCode.BadMessage],
  [
    "numeric target_user",
    '{"type":"message","message":"hi","target_user":3}',
    ErrorCode.BadMessage,
  ],
  ["boolean to", '{"type":"message","message":"hi","to":true}', ErrorCode.BadMessage],
  ["null to", '{"type":"message","message":"hi","to":null}', ErrorCode.BadMessage],
  [
    "boolean to beside a valid target_user",
    '{"type":"message","message":"hi","to":1,"target_user":"bob"}',
    ErrorCode.BadMessage,
  ],
  ["private without to", '{"type":"private","message":"hi"}', ErrorCode.BadMessage],
  [
    "private with empty text",
    '{"type":"private","to":"bob","message":" "}',
    ErrorCode.EmptyMessage,
  ],
  ["rename without name", '{"type":"rename"}', ErrorCode.BadMessage],
  ["numeric name", '{"type":"rename","name":7}', ErrorCode.BadMessage],
  ["join without room", '{"type":"join"}', ErrorCode.BadMessage],
  ["join with string since", '{"type":"join","room":"a","since":"3"}', ErrorCode.BadMessage],
  ["join with negative since", '{"type":"join","room":"a","since":-1}', ErrorCode.BadMessage],
  ["join with fractional since", '{"type":"join","room":"a","since":1.5}', ErrorCode.BadMessage],
  ["resume without since", '{"type":"resume","room":"a"}', ErrorCode.BadMessage],
  ["leave with numeric room", '{"type":"leave","room":1}', ErrorCode.BadMessage],
  ["users with numeric room", '{"type":"users","room":1}', ErrorCode.BadMessage],
];

Deno.test("parseClientMessage accepts every well-formed frame", async (t) => {
  for (const [name, text, expected] of good) {
    await t.step(name, () => {
      const result = parseClientMessage(text);
      assert.deepEqual(result, { ok: true, value: expected });
    });
  }
});

Deno.test("parseClientMessage refuses bad frames with a stable code", async (t) => {
  for (const [name, text, code] of bad) {
    await t.step(name, () => {
      const result = parseClientMessage(text);
      assert.equal(result.ok, false, `accepted: ${text}`);
      if (!result.ok) {
        assert.equal(result.code, code);
        assert.equal(typeof result.message, "string");
        assert.ok(result.message.length > 0);
      }
    });
  }
});

Deno.test("parseClientMessage keeps an unknown type short in its message", () => {
  const result = parseClientMessage(JSON.stringify({ type: "x".repeat(10_000) }));
  assert.equal(result.ok, false);
  if (!result.ok) assert.ok(result.message.length < 200);
});

Deno.test("normalizeName trims and enforces the naming rules", async (t) => {
  const valid: [string, string][] = [
    ["alice", "alice"],
    ["  bob  ", "bob"],
    ["Jean-Luc.P_2", "Jean-Luc.P_2"],
    ["Zoë", "Zoë"],
    ["Дмитрий", "Дмитрий"],
    ["李小龍", "李小龍"],
    ["a".repeat(32), "a".repeat(32)],
    ["User 7", "User 7"],
    ["Jose\u0301", "José"],
    ["\uFF21\uFF4C\uFF49\uFF43\uFF45", "Alice"],
    ["山田たろう", "山田たろう"],
  ];
  for (const [raw, name] of valid) {
    await t.step(`accepts ${JSON.stringify(raw)}`, () => assert.equal(normalizeName(raw), name));
  }
  const invalid = [
    "",
    "   ",
    "a".repeat(33),
    "a/b",
    "<script>",
    "a\u0000b",
    "x@y",
    "tab\there",
    "\u3164",
    "\u0301\u0301",
    "\u0410lice",
    "Alice\u200D",
  ];
  for (const raw of invalid) {
    await t.step(
      `refuses ${JSON.stringify(raw)}`,
      () => assert.equal(normalizeName(raw), undefined),
    );
  }
});

Deno.test("isReservedName reserves System in any case or width", () => {
  assert.equal(isReservedName("System"), true);
  assert.equal(isReservedName("sYSTEM"), true);
  assert.equal(isReservedName("\uFF33\uFF59\uFF53\uFF54\uFF45\uFF4D"), true);
  assert.equal(isReservedName("Systems"), false);
});

Deno.test("close codes are the documented numbers", () => {
  assert.equal(CloseCode.GoingAway, 1001);
  assert.equal(CloseCode.PolicyViolation, 1008);
  assert.equal(CloseCode.MessageTooBig, 1009);
  assert.equal(CloseCode.HeartbeatTimeout, 4000);
  assert.equal(CloseCode.SlowConsumer, 4008);
  assert.equal(CloseCode.UsernameInUse, 4009);
});

/** Strings JSON must escape or that are easy to get wrong, next to ordinary text. */
const tricky = [
  "hi",
  "",
  "   ",
  'say "hi"',
  "back\\slash",
  "line\nbreak",
  "tab\tand\u0000nul\u001f",
  "\u007f delete",
  "漢字 and é",
  "emoji 😀",
  "lone \ud800 surrogate",
  "\u2028 separators \u2029",
  '"}',
  "\\",
];

Deno.test("a chat frame reads as JSON.parse would read it", async (t) => {
  const head = '{"type":"message","message":';
  const cases: [string, string][] = [
    ...tricky.map((
      m,
    ): [string, string] => [`escaped ${JSON.stringify(m)}`, head + JSON.stringify(m) + "}"]),
    // Unescaped: a raw control character is bad JSON, a raw lone surrogate is not.
    ...tricky.map((m): [string, string] => [`raw ${JSON.stringify(m)}`, `${head}"${m}"}`]),
    ["cut after the opening quote", `${head}"}`],
    ["cut before the closing brace", `${head}"hi"`],
    ["more fields after the message", `${head}"hi","room":"a"}`],
  ];
  for (const [name, text] of cases) {
    await t.step(name, () => {
      let expected: unknown;
      try {
        const data = JSON.parse(text);
        const { type: _, message, ...rest } = data;
        expected = typeof message === "string" && message.trim() === ""
          ? ErrorCode.EmptyMessage
          : { type: "message", message, ...rest };
      } catch {
        expected = ErrorCode.BadJson;
      }
      const result = parseClientMessage(text);
      assert.deepEqual(result.ok ? result.value : result.code, expected);
    });
  }
});
