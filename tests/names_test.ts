import assert from "node:assert/strict";
import { isReservedName, nameKey, normalizeName } from "../chat/names.ts";

/** Whether `raw` is refused outright or, once normalised, is the reserved name. */
function refusedAsSystem(raw: string): boolean {
  const name = normalizeName(raw);
  return name === undefined || isReservedName(name);
}

Deno.test("System in any disguise is refused", async (t) => {
  const disguises: [string, string][] = [
    ["plain", "System"],
    ["another case", "sYSTEM"],
    ["Cyrillic е", "Syst\u0435m"],
    ["fullwidth", "\uFF33\uFF59\uFF53\uFF54\uFF45\uFF4D"],
    ["combining grapheme joiner", "System\u034F"],
    ["zero-width space", "Sys\u200Btem"],
    ["mathematical bold", "\u{1D412}\u{1D432}\u{1D42C}\u{1D42D}\u{1D41E}\u{1D426}"],
    ["all Cyrillic capitals", "\u0405\u0423\u0405\u0422\u0415\u041C"],
    ["Latin small capitals", "\uA731\u028F\uA731\u1D1B\u1D07\u1D0D"],
  ];
  for (const [what, raw] of disguises) {
    await t.step(what, () => assert.equal(refusedAsSystem(raw), true, JSON.stringify(raw)));
  }
  await t.step("a longer name that contains it is fine", () => {
    assert.equal(refusedAsSystem("Systems"), false);
    assert.equal(refusedAsSystem("System 2"), false);
  });
});

Deno.test("names of fillers, default-ignorable code points or marks only are refused", async (t) => {
  const empty: [string, string][] = [
    ["Hangul filler U+3164", "\u3164\u3164"],
    ["halfwidth Hangul filler U+FFA0", "\uFFA0"],
    ["Hangul choseong filler U+115F", "\u115F\u115F\u115F"],
    ["Hangul jungseong filler U+1160", "\u1160"],
    ["a filler inside a name", "al\u3164ice"],
    ["combining marks only", "\u0301\u0302\u0303"],
    ["a combining mark after spaces", "  \u0301"],
    ["zero-width joiner inside a name", "al\u200Dice"],
    ["soft hyphen inside a name", "al\u00ADice"],
    ["punctuation only", "_-."],
  ];
  for (const [what, raw] of empty) {
    await t.step(what, () => assert.equal(normalizeName(raw), undefined, JSON.stringify(raw)));
  }
});

Deno.test("a name mixes at most one script, as UTS 39 highly restrictive", async (t) => {
  const refused: [string, string][] = [
    ["Cyrillic А in Alice", "\u0410lice"],
    ["Greek ο in Bob", "B\u03BFb"],
    ["Latin with Cyrillic", "abc где"],
    ["Hangul with kana", "\uD55C\u30AB"],
    ["Bopomofo with Hangul", "\u3105\uD55C"],
    ["a script that is not recommended (Cherokee)", "\u13A0\u13A1"],
    ["a script that is not recommended (Runic)", "\u16A0\u16A1"],
  ];
  for (const [what, raw] of refused) {
    await t.step(`refuses ${what}`, () => assert.equal(normalizeName(raw), undefined));
  }
  const accepted: [string, string][] = [
    ["Japanese: kanji with kana", "山田たろう"],
    ["Japanese: kanji with katakana", "東京タワー"],
    ["Korean: Hanja with Hangul", "韓國한국"],
    ["Chinese with Bopomofo", "中文ㄅㄆ"],
    ["Latin with Han", "Anna 李"],
    ["Cyrillic with digits and punctuation", "Дмитрий_2.0"],
    ["Arabic", "محمد"],
    ["Devanagari with its marks", "देवनागरी"],
  ];
  for (const [what, raw] of accepted) {
    await t.step(`accepts ${what}`, () => assert.equal(normalizeName(raw), raw));
  }
});

Deno.test("names are NFKC-normalised and keep what was accepted before", async (t) => {
  const cases: [string, string][] = [
    ["  bob  ", "bob"],
    ["Jose\u0301", "José"],
    ["José", "José"],
    ["\u{1D400}\u{1D425}\u{1D422}\u{1D41C}\u{1D41E}", "Alice"],
    ["\uFF21\uFF4C\uFF49\uFF43\uFF45", "Alice"],
    ["User 1", "User 1"],
    ["a_b-c.d", "a_b-c.d"],
    ["李小龍", "李小龍"],
    ["ひらがなカタカナ漢字", "ひらがなカタカナ漢字"],
    ["\u3000ideographic space\u3000", "ideographic space"],
  ];
  for (const [raw, name] of cases) {
    await t.step(JSON.stringify(raw), () => assert.equal(normalizeName(raw), name));
  }
});

Deno.test("nameKey makes names that differ only by width or case the same", async (t) => {
  const same: [string, string][] = [
    ["Alice", "alice"],
    ["ALICE", "\uFF41\uFF4C\uFF49\uFF43\uFF45"],
    ["Straße", "STRASSE"],
    ["ΟΔΟΣ", "οδοσ"],
    ["José", "JOSÉ"],
  ];
  for (const [a, b] of same) {
    await t.step(`${a} = ${b}`, () => assert.equal(nameKey(a), nameKey(b)));
  }
  await t.step("different names keep different keys", () => {
    assert.notEqual(nameKey("Alice"), nameKey("Alicia"));
    assert.notEqual(nameKey("José"), nameKey("Jose"));
  });
});
