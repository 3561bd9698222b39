import assert from "node:assert/strict";

// No Docker engine runs the tests: these read .dockerignore and the Dockerfile
// and check that the image leaves out what the server never reads and keeps
// everything it does.

const ROOT = new URL("../", import.meta.url);

/** What the server never reads: none of it may reach the image. */
const LEFT_OUT = [".git", ".ci", "bench", "data", "deploy", "docs", "tests", "tools"];

/** One line of a .dockerignore: a glob as a regular expression, and whether it starts with `!`. */
interface IgnoreRule {
  regex: RegExp;
  segments: number;
  include: boolean;
}

/** A .dockerignore glob as an anchored regular expression, as Docker's patternmatcher reads it. */
function globRegex(glob: string): RegExp {
  let source = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === "*" && glob[i + 1] === "*") {
      // `**/` is any number of directories, none included; a trailing `**` is anything.
      const slash = glob[i + 2] === "/";
      source += slash ? "(?:.*/)?" : ".*";
      i += slash ? 2 : 1;
    } else if (c === "*") source += "[^/]*";
    else if (c === "?") source += "[^/]";
    else source += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${source}$`);
}

/** Parses .dockerignore: comments and blank lines skipped, paths cleaned like Docker's. */
function parseDockerignore(text: string): IgnoreRule[] {
  const rules: IgnoreRule[] = [];
  for (const raw of text.split("\n")) {
    let line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const include = line.startsWith("!");
    if (include) line = line.slice(1).trim();
    const clean = line.replace(/^\/+/, "").replace(/\/+$/, "").replace(/^\.\//, "");
    rules.push({ regex: globRegex(clean), segments: clean.split("/").length, include });
  }
  return rules;
}

/**
 * Whether Docker leaves `path` (relative, `/`-separated) out of the build
 * context: the last rule that matches the path, or the leading directories
 * of the path as deep as the rule, decides.
 */
function isExcluded(path: string, rules: IgnoreRule[]): boolean {
  const dirs = path.split("/").slice(0, -1);
  let excluded = false;
  for (const rule of rules) {
    let match = rule.regex.test(path);
    if (!match && dirs.length >= rule.segments) {
      match = rule.regex.test(dirs.slice(0, rule.segments).join("/"));
    }
    if (match) excluded = !rule.include;
  }
  return excluded;
}

async function dockerignore(): Promise<IgnoreRule[]> {
  return parseDockerignore(await Deno.readTextFile(new URL(".dockerignore", ROOT)));
}

/** The script the image runs: the last `.ts` argument of the Dockerfile's exec-form CMD. */
async function imageEntry(): Promise<string> {
  const dockerfile = await Deno.readTextFile(new URL("Dockerfile", ROOT));
  const cmd = /^CMD\s+(\[.*\])\s*$/m.exec(dockerfile);
  assert.ok(cmd, "the Dockerfile has no exec-form CMD");
  const entry = (JSON.parse(cmd[1]!) as string[]).findLast((arg) => arg.endsWith(".ts"));
  assert.ok(entry, `no script in the CMD: ${cmd[1]}`);
  return entry;
}

/** The project's files in the module graph of `entry`, relative to the root, from `deno info`. */
async function localModules(entry: string): Promise<string[]> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", entry],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(output.success, new TextDecoder().decode(output.stderr));
  const graph = JSON.parse(new TextDecoder().decode(output.stdout)) as {
    modules: { specifier: string }[];
  };
  return graph.modules
    .map((m) => m.specifier)
    .filter((s) => s.startsWith(ROOT.href))
    .map((s) => s.slice(ROOT.href.length))
    .sort();
}

/** Every file under `dir` (relative to the root), depth first. */
async function filesUnder(dir: string): Promise<string[]> {
  const files: string[] = [];
  for await (const entry of Deno.readDir(new URL(`${dir}/`, ROOT))) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) files.push(...await filesUnder(path));
    else files.push(path);
  }
  return files.sort();
}

Deno.test("the .dockerignore reader follows Docker's rules", () => {
  const rules = parseDockerignore("# comment\n\n/docs/\n*.md\n!README.md\nbench/**/*.json\n");
  assert.ok(isExcluded("docs", rules));
  assert.ok(isExcluded("docs/security.md", rules), "a directory's files go with it");
  assert.ok(isExcluded("docs/a/b.png", rules));
  assert.ok(!isExcluded("docsy.ts", rules), "a name that only starts like one");
  assert.ok(!isExcluded("chat/docs.ts", rules), "patterns are anchored at the root");
  assert.ok(isExcluded("NOTES.md", rules));
  assert.ok(!isExcluded("chat/NOTES.md", rules), "* does not cross a slash");
  assert.ok(!isExcluded("README.md", rules), "! takes a file back");
  assert.ok(isExcluded("bench/results/x.json", rules));
  assert.ok(isExcluded("bench/x.json", rules), "**/ may be no directory at all");
  assert.ok(!isExcluded("bench/x.ts", rules));
});

Deno.test(".dockerignore leaves tests, bench, docs, tools, .ci, deploy, data and .git out", async () => {
  const rules = await dockerignore();
  for (const dir of LEFT_OUT) {
    assert.ok(isExcluded(dir, rules), `the image would contain: ${dir}`);
    assert.ok(isExcluded(`${dir}/any/file.ts`, rules), `the image would contain files of: ${dir}`);
  }
});

Deno.test("the image keeps every module its CMD imports, deno.json and static/", async () => {
  const rules = await dockerignore();
  const entry = await imageEntry();
  assert.equal(entry, "main.ts");
  const modules = await localModules(entry);
  // The graph is the server's, not an empty or a failed one.
  for (const module of ["main.ts", "app.ts", "chat/metrics.ts", "routes/ws_routes.ts"]) {
    assert.ok(modules.includes(module), `not in the graph of ${entry}: ${module}`);
  }
  // The server imports nothing the image leaves out, tools/ included.
  const kept = [...modules, "deno.json", ...await filesUnder("static")];
  assert.ok(kept.some((path) => path.startsWith("static/")), "static/ is empty");
  for (const path of kept) {
    assert.ok(!isExcluded(path, rules), `the image would lack: ${path}`);
  }
});
