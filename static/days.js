// The label of a day separator in the log.

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * The label of the separator before the first item of `date`'s day: "Today", "Yesterday", or
 * the weekday and date, with the year when it is not the current one.
 */
export function dayLabel(date, now = new Date()) {
  const today = new Date(now.getFullYear(), now.getMonth(), now.getDate());
  const day = new Date(date.getFullYear(), date.getMonth(), date.getDate());
  const days = Math.round((today.getTime() - day.getTime()) / DAY_MS);
  if (days === 0) return "Today";
  if (days === 1) return "Yesterday";
  const options = { weekday: "long", day: "numeric", month: "long" };
  if (date.getFullYear() !== now.getFullYear()) options.year = "numeric";
  return date.toLocaleDateString(undefined, options);
}
