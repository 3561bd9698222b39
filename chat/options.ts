/**
 * How every module fills in its options: each exports its defaults as one
 * frozen object next to the code that uses them, and merges a caller's
 * options over it with {@linkcode withDefaults}.
 *
 * @module
 */

/**
 * `{ ...defaults, ...options }`, except that an option given as `undefined`
 * keeps its default, as an omitted one does. Callers forward optional
 * settings (`clock: options.clock`); a plain spread would overwrite the
 * default with `undefined`.
 *
 * @example
 * ```ts
 * const DEFAULTS = Object.freeze({ intervalMs: 10_000 });
 * const { intervalMs } = withDefaults(DEFAULTS, { intervalMs: undefined }); // 10000
 * ```
 */
export function withDefaults<D extends object, O extends object>(defaults: D, options: O): D & O {
  const merged = { ...defaults } as Record<string, unknown>;
  for (const [key, value] of Object.entries(options)) {
    if (value !== undefined) merged[key] = value;
  }
  return merged as D & O;
}
