// Sorting and the name filter: pure functions over tile views.

/** Sort keys, in the order the page offers them; the first is the default. */
export const SORTS = [
  ["error-volume", "Error then volume"],
  ["alpha", "Alphabetical"],
  ["volume", "Volume"],
  ["error", "Error"],
  ["mean", "Mean"],
  ["median", "Median"],
  ["p90", "90th"],
  ["p99", "99th"],
  ["p995", "99.5th"],
];

const byName = (a, b) => a.view.name.localeCompare(b.view.name) || a.key.localeCompare(b.key);
const descending = (value) => (a, b) => value(b) - value(a) || byName(a, b);

const COMMAND_ORDERS = {
  // the most broken first; among healthy (or equally broken) circuits the busiest first
  "error-volume": (a, b) => b.view.errorPct - a.view.errorPct || b.view.rate - a.view.rate || byName(a, b),
  alpha: byName,
  volume: descending((t) => t.view.rate),
  error: descending((t) => t.view.errorPct),
  mean: descending((t) => t.view.latency.mean),
  median: descending((t) => t.view.latency.p50),
  p90: descending((t) => t.view.latency.p90),
  p99: descending((t) => t.view.latency.p99),
  p995: descending((t) => t.view.latency.p995),
};

/** Commands in the order of `sort` (unknown keys fall back to the default). */
export function sortCommands(tiles, sort) {
  const order = COMMAND_ORDERS[sort] ?? COMMAND_ORDERS["error-volume"];
  return [...tiles].sort(order);
}

/** Pools: by volume for the volume sorts, else alphabetical. */
export function sortPools(tiles, sort) {
  const order = sort === "volume" || sort === "error-volume" ? descending((t) => t.view.rate) : byName;
  return [...tiles].sort(order);
}

/**
 * Does a tile's name (or group) match the filter? Case-insensitive; several words separated by spaces
 * or commas match any of them.
 */
export function matches(view, filter) {
  const words = filter
    .toLowerCase()
    .split(/[\s,]+/)
    .filter(Boolean);
  if (!words.length) return true;
  const text = `${view.name} ${view.group ?? ""}`.toLowerCase();
  return words.some((word) => text.includes(word));
}
