// Browser notifications: shown only once the person allowed them (the page's "Notify me"
// asks, on their click), and only while the tab is hidden.

const supported = typeof Notification === "function";

/** Whether the browser can still ask the person (never asked yet). */
export function notificationsAsked() {
  return supported && Notification.permission === "default";
}

/** Shows a notification when allowed and the tab is hidden; a click brings the tab back. */
export function notify(title, body) {
  if (!supported || Notification.permission !== "granted") return;
  if (document.visibilityState !== "hidden") return;
  const note = new Notification(title, { body: body.slice(0, 200), tag: "chat" });
  note.addEventListener?.("click", () => {
    focus();
    note.close?.();
  });
}
