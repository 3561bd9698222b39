/**
 * Structured logs: one JSON line per event on stderr, filtered by level.
 *
 * @module
 */

import { withDefaults } from "./options.ts";

/** Log levels, least severe first. */
export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;

/** A log level. */
export type LogLevel = typeof LOG_LEVELS[number];

/** Fields of a log line. */
export type LogFields = Record<string, unknown>;

/** Writes one JSON line per event. */
export interface Logger {
  /** Logs at debug level. */
  debug(event: string, fields?: LogFields): void;
  /** Logs at info level. */
  info(event: string, fields?: LogFields): void;
  /** Logs at warn level. */
  warn(event: string, fields?: LogFields): void;
  /** Logs at error level. */
  error(event: string, fields?: LogFields): void;
}

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** Options of {@linkcode createLogger}. */
export interface LoggerOptions {
  /** The least severe level written; LOG_LEVEL reads its default here. */
  level?: LogLevel;
  /** Where lines go. Default: stderr. */
  write?: (line: string) => void;
}

const encoder = new TextEncoder();

function writeStderr(line: string): void {
  Deno.stderr.writeSync(encoder.encode(line + "\n"));
}

/** The defaults of {@linkcode LoggerOptions}. */
export const DEFAULT_LOGGER: Readonly<Required<LoggerOptions>> = Object.freeze({
  level: "info",
  write: writeStderr,
});

// `token` and `access_token` query values, up to the next parameter or the end of the URL; a
// backslash or quote ends the match too, since the line is JSON by then.
const TOKEN_QUERY = /([?&](?:access_)?token=)[^&#\s"\\]*/gi;
// A JWT anywhere: its header always starts with `{"`, base64url `eyJ`.
const JWT_SHAPE = /\beyJ[\w-]+\.[\w-]+\.[\w-]*/g;

/**
 * Replaces token query values and JWT-shaped strings in a log line with
 * `[redacted]`. The last line of defence: URLs carry `?token=` and a line
 * may quote a URL or an offered subprotocol anywhere in any field.
 */
export function redactTokens(line: string): string {
  return line.replace(TOKEN_QUERY, "$1[redacted]").replace(JWT_SHAPE, "[redacted]");
}

/** Creates a logger that writes lines at or above `level`. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const { level: least, write } = withDefaults(DEFAULT_LOGGER, options);
  const min = RANK[least];
  const log = (level: LogLevel) => (event: string, fields?: LogFields) => {
    if (RANK[level] < min) return;
    write(
      redactTokens(JSON.stringify({ time: new Date().toISOString(), level, event, ...fields })),
    );
  };
  return { debug: log("debug"), info: log("info"), warn: log("warn"), error: log("error") };
}

/** A logger that drops everything. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};
