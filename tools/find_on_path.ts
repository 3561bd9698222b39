/**
 * Finds an executable on `PATH`, for the tools, tests and benchmark that
 * start other programs (redis-server, openssl, chromium, taskset).
 *
 * ```ts
 * const redis = findOnPath("redis-server"); // "/usr/bin/redis-server" or undefined
 * ```
 *
 * @module
 */

/** Whether `path` is a file someone may execute; false when it is missing or unreadable. */
export function isExecutableFile(path: string): boolean {
  try {
    const info = Deno.statSync(path);
    return info.isFile && (info.mode === null || (info.mode & 0o111) !== 0);
  } catch (error) {
    if (
      error instanceof Deno.errors.NotFound ||
      error instanceof Deno.errors.NotADirectory ||
      error instanceof Deno.errors.PermissionDenied
    ) {
      return false;
    }
    throw error;
  }
}

/** The full path of the first executable `binary` in a `PATH` directory, or undefined. */
export function findOnPath(binary: string): string | undefined {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (dir === "") continue;
    const path = `${dir}/${binary}`;
    if (isExecutableFile(path)) return path;
  }
  return undefined;
}
