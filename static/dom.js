// Small DOM helpers of the page. User-supplied text goes in through textContent only.

export const $ = (id) => {
  const element = document.getElementById(id);
  if (element === null) throw new Error(`Missing element: ${id}`);
  return element;
};

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** User-supplied text: its direction comes from its own first strong letter (Arabic, Hebrew…). */
export function userText(tag, className, text) {
  const node = el(tag, className, text);
  node.dir = "auto";
  return node;
}

function formatTime(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return { text: "", full: "" };
  return {
    text: date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }),
    full: date.toLocaleString(),
  };
}

export function timeElement(timestamp) {
  const time = formatTime(timestamp);
  const stamp = el("time", "time", time.text);
  stamp.dateTime = timestamp;
  stamp.title = time.full;
  return stamp;
}
