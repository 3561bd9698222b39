/**
 * Reads a byte stream line by line, for the benchmark's child processes.
 *
 * @module
 */

/** Yields each line of a stream without its newline; a last unterminated line too. */
export async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let rest = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    rest += chunk;
    let newline: number;
    while ((newline = rest.indexOf("\n")) >= 0) {
      yield rest.slice(0, newline);
      rest = rest.slice(newline + 1);
    }
  }
  if (rest !== "") yield rest;
}
