// Links: http(s) URLs in message text become links, built node by node (never as HTML):
// trailing punctuation and an unopened ")" stay outside, other schemes stay text.

const URL_CANDIDATE = /\bhttps?:\/\/[^\s<>"]+/gi;
const TRAILING = ".,;:!?'";

/** The URL at the start of `candidate`, without trailing punctuation or an unopened `)`. */
function trimUrl(candidate) {
  let url = candidate;
  for (;;) {
    const last = url.at(-1);
    if (last !== undefined && TRAILING.includes(last)) {
      url = url.slice(0, -1);
    } else if (last === ")" && url.split("(").length < url.split(")").length) {
      url = url.slice(0, -1);
    } else {
      return url;
    }
  }
}

function isWebUrl(text) {
  try {
    const url = new URL(text);
    return (url.protocol === "http:" || url.protocol === "https:") && url.hostname !== "";
  } catch {
    return false;
  }
}

/** The message text as nodes: text nodes, and `<a>` for each http(s) URL. */
export function linkify(text) {
  const nodes = [];
  let at = 0;
  for (const match of text.matchAll(URL_CANDIDATE)) {
    const url = trimUrl(match[0]);
    if (!isWebUrl(url)) continue;
    if (match.index > at) nodes.push(document.createTextNode(text.slice(at, match.index)));
    const link = document.createElement("a");
    link.href = url;
    link.target = "_blank";
    link.rel = "noopener noreferrer";
    link.append(document.createTextNode(url));
    nodes.push(link);
    at = match.index + url.length;
  }
  if (at < text.length) nodes.push(document.createTextNode(text.slice(at)));
  return nodes;
}
