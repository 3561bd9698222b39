/**
 * The package's version, read from `deno.json` so it is written in one place
 * (`chat_build_info` on /metrics, the package's `VERSION`).
 *
 * @module
 */

import denoJson from "../deno.json" with { type: "json" };

/** The version of this package, as `deno.json` names it. */
export const VERSION: string = denoJson.version;
