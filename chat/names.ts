/**
 * The one place that decides what a username or room name may be and when
 * two names are the same. It imports nothing, so every layer (protocol,
 * manager, ban list, engines, routes) can use it.
 *
 * The rules follow Unicode UTS #39 so that a name cannot pass for another
 * one or for the server's `System`: NFKC normalisation, no invisible code
 * points, one script per name ("highly restrictive"), only the scripts
 * UTS #39 recommends for identifiers, and comparison by a case-folded key.
 *
 * @module
 */

const MAX_NAME_LENGTH = 32;
// Letters of any script, digits, space, underscore, hyphen and dot.
const NAME_PATTERN = /^[\p{L}\p{M}\p{N} _.\-]+$/u;
// Invisible code points, and the Hangul fillers: letters (Lo) that show as blanks.
const INVISIBLE = /[\p{Default_Ignorable_Code_Point}\u115F\u1160\u3164\uFFA0]/u;
// A name of marks, spaces and punctuation alone shows as nothing or nearly.
const LETTER_OR_DIGIT = /[\p{L}\p{N}]/u;
// Digits, space, `_ - .` and combining marks go with every script.
const ANY_SCRIPT = /[\p{Script=Common}\p{Script=Inherited}]/u;
const ASCII = /^[\0-\x7f]*$/;
const ASCII_LETTER = /[A-Za-z]/;

/** UTS #39's Recommended scripts (Table 5), the only letters a name may use. */
const RECOMMENDED_SCRIPTS = [
  "Arabic",
  "Armenian",
  "Bengali",
  "Bopomofo",
  "Cyrillic",
  "Devanagari",
  "Ethiopic",
  "Georgian",
  "Greek",
  "Gujarati",
  "Gurmukhi",
  "Han",
  "Hangul",
  "Hebrew",
  "Hiragana",
  "Kannada",
  "Katakana",
  "Khmer",
  "Lao",
  "Latin",
  "Malayalam",
  "Myanmar",
  "Oriya",
  "Sinhala",
  "Tamil",
  "Telugu",
  "Thaana",
  "Thai",
  "Tibetan",
] as const;
const SCRIPT_PATTERNS = RECOMMENDED_SCRIPTS.map((script) =>
  [script, new RegExp(`\\p{Script=${script}}`, "u")] as const
);

/**
 * The script sets UTS #39 "highly restrictive" lets one name mix: the
 * writing systems of Japanese, Chinese and Korean, each with Latin.
 */
const MIXES: ReadonlySet<string>[] = [
  new Set(["Latin", "Han", "Hiragana", "Katakana"]),
  new Set(["Latin", "Han", "Bopomofo"]),
  new Set(["Latin", "Han", "Hangul"]),
];

/** The sender name of server notices, as its key; no user may take it. */
const RESERVED = "system";
/**
 * Letters of Cyrillic, and Latin small capitals, that pass for the letters
 * of `system`: either script alone can spell a `System` lookalike that
 * NFKC and case folding leave apart.
 */
const RESERVED_LOOKALIKES: Record<string, string> = {
  "\u0455": "s", // Cyrillic ѕ
  "\u0443": "y", // Cyrillic у
  "\u04AF": "y", // Cyrillic ү
  "\u0442": "t", // Cyrillic т
  "\u0435": "e", // Cyrillic е
  "\u043C": "m", // Cyrillic м
  "\uA731": "s", // small capital S
  "\u028F": "y", // small capital Y
  "\u1D1B": "t", // small capital T
  "\u1D07": "e", // small capital E
  "\u1D0D": "m", // small capital M
};

/**
 * Returns the name, NFKC-normalised and trimmed, when it is a valid username
 * or room name, otherwise `undefined`. Valid: 1 to 32 characters, letters of
 * one of UTS #39's Recommended scripts (Han may go with kana, Bopomofo or
 * Hangul, and those with Latin), digits, space and `_ - .`, at least one
 * letter or digit, and no default-ignorable code point or Hangul filler.
 */
export function normalizeName(raw: string): string | undefined {
  // Checked before NFKC too, which maps some of them to others or away.
  if (INVISIBLE.test(raw)) return undefined;
  const name = raw.normalize("NFKC").trim();
  if (name.length === 0 || [...name].length > MAX_NAME_LENGTH) return undefined;
  if (!NAME_PATTERN.test(name) || INVISIBLE.test(name) || !LETTER_OR_DIGIT.test(name)) {
    return undefined;
  }
  const scripts = scriptsOf(name);
  return scripts !== undefined && oneScript(scripts) ? name : undefined;
}

/**
 * The key two names are compared by: names with the same key are the same
 * name (for uniqueness, bans, private messages and presence). It is the
 * NFKC form, case-folded, so names that differ only by width or case
 * collide.
 */
export function nameKey(name: string): string {
  // Upper then lower folds what lower alone keeps apart: ß and SS, ς and σ, ı and i.
  return name.normalize("NFKC").toUpperCase().toLowerCase().normalize("NFKC");
}

/**
 * The one spelling of a room name, or `undefined` when the name breaks the
 * rules of {@linkcode normalizeName}: the normalised name folded to its
 * {@linkcode nameKey}, so `Dev`, `DEV` and `ｄｅｖ` are all the room `dev`.
 * Every edge that takes a room name (URLs, frames, the HTTP APIs) folds it
 * here, so the registry, the engines and history see one name per room.
 */
export function roomName(raw: string): string | undefined {
  const name = normalizeName(raw);
  return name === undefined ? undefined : nameKey(name);
}

/** Whether a name is, or passes for, the server's reserved "System". */
export function isReservedName(name: string): boolean {
  const key = nameKey(name);
  if (key === RESERVED) return true;
  if (key.length !== RESERVED.length) return false;
  return [...key].map((c) => RESERVED_LOOKALIKES[c] ?? c).join("") === RESERVED;
}

/** The scripts of a name's letters; undefined when one is not a recommended script. */
function scriptsOf(name: string): Set<string> | undefined {
  // ASCII letters are Latin and the rest of ASCII goes with every script: most names need no
  // test against each of the scripts' patterns.
  if (ASCII.test(name)) return new Set(ASCII_LETTER.test(name) ? ["Latin"] : []);
  const scripts = new Set<string>();
  for (const char of name) {
    if (ANY_SCRIPT.test(char)) continue;
    const script = SCRIPT_PATTERNS.find(([, pattern]) => pattern.test(char))?.[0];
    if (script === undefined) return undefined;
    scripts.add(script);
  }
  return scripts;
}

/** Whether the scripts count as one: a single script, or one of the CJK {@linkcode MIXES}. */
function oneScript(scripts: Set<string>): boolean {
  if (scripts.size <= 1) return true;
  return MIXES.some((mix) => [...scripts].every((script) => mix.has(script)));
}
