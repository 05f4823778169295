// Display math: one stream document (instance or aggregated) to the numbers a tile shows.
//
// An aggregator (quills monitor, Turbine 1.x) sums integers over `reportingHosts` hosts, so per-host
// values are divided back; booleans and strings arrive as the value all hosts agree on, or as a
// count per value ({"false":2,"true":1}, as a JSON string from Turbine 1.x or an object from 2.x).

export const RATE_MAX = 400; // per-host requests/s at which a circle reaches its largest size
export const RADIUS_MIN = 5;
export const RADIUS_MAX = 40;

// Error % stops: below the first one a circle is green; at or above the last one it is red.
const ERROR_STOPS = [
  [10, [0x00, 0xaa, 0x00]],
  [25, [0xff, 0xcc, 0x00]],
  [40, [0xff, 0x99, 0x00]],
  [50, [0xff, 0x00, 0x00]],
];

/** How many hosts report each value: {"true": 2, "false": 1}, from any of the forms above. */
export function valueCounts(value, hosts = 1) {
  if (value !== null && typeof value === "object") return { ...value };
  if (typeof value === "string" && value.startsWith("{")) {
    try {
      const parsed = JSON.parse(value);
      if (parsed && typeof parsed === "object") return parsed;
    } catch {
      // not a count map: an ordinary string value
    }
  }
  return { [String(value)]: hosts };
}

/** Hosts reporting `true` for a boolean field (0..hosts). */
export function trueCount(value, hosts = 1) {
  const counts = valueCounts(value, hosts);
  return Number(counts["true"] ?? 0);
}

/** A number that an aggregator may have summed (`summed`) or sent as a string; per host. */
export function perHost(value, hosts, summed = true) {
  if (typeof value === "number") return summed ? value / hosts : value;
  if (typeof value === "string" && value.trim() !== "" && !Number.isNaN(Number(value))) return Number(value);
  if (value && (typeof value === "object" || String(value).startsWith("{"))) {
    const counts = valueCounts(value, hosts);
    let total = 0;
    let weight = 0;
    for (const [key, n] of Object.entries(counts)) {
      if (!Number.isNaN(Number(key))) {
        total += Number(key) * n;
        weight += n;
      }
    }
    return weight ? total / weight : 0;
  }
  return 0;
}

function hostsOf(doc) {
  const hosts = Number(doc.reportingHosts);
  return hosts > 0 ? hosts : 1;
}

const STATE_LABELS = {
  closed: "Closed",
  open: "Open",
  half_open: "Half-open",
  forced_open: "Forced open",
  forced_closed: "Forced closed",
  disabled: "Disabled",
};

/** The circuit: {kind, label}; kind is one of the STATE_LABELS keys or "mixed". */
export function circuitOf(doc) {
  const hosts = hostsOf(doc);
  if (trueCount(doc.propertyValue_circuitBreakerForceOpen, hosts) === hosts) {
    return { kind: "forced_open", label: STATE_LABELS.forced_open };
  }
  if (doc.quills_circuitState !== undefined) {
    const counts = valueCounts(doc.quills_circuitState, hosts);
    const states = Object.keys(counts).filter((k) => counts[k] > 0);
    if (states.length === 1) {
      const kind = states[0] in STATE_LABELS ? states[0] : "closed";
      return { kind, label: STATE_LABELS[kind] };
    }
    const order = Object.keys(STATE_LABELS);
    states.sort((a, b) => order.indexOf(a) - order.indexOf(b));
    const label = states.map((s) => `${STATE_LABELS[s] ?? s} ${counts[s]}`).join(" · ");
    const anyOpen = states.some((s) => s === "open" || s === "forced_open" || s === "half_open");
    return { kind: anyOpen ? "mixed" : "closed", label };
  }
  const open = trueCount(doc.isCircuitBreakerOpen, hosts);
  if (trueCount(doc.propertyValue_circuitBreakerForceClosed, hosts) === hosts && open === 0) {
    return { kind: "forced_closed", label: STATE_LABELS.forced_closed };
  }
  if (open === 0) return { kind: "closed", label: "Closed" };
  if (open >= hosts) return { kind: "open", label: "Open" };
  return { kind: "mixed", label: `Open ${open} · Closed ${hosts - open}` };
}

/** Requests per second over the rolling window, for the cluster (all hosts). */
function rateOf(count, doc, hosts) {
  const windowMs = perHost(doc.propertyValue_metricsRollingStatisticalWindowInMilliseconds, hosts) || 10000;
  return Number(count || 0) / (windowMs / 1000);
}

function latencyOf(doc, hosts) {
  // exact cluster percentiles from merged histograms (quills monitor) are not divided by hosts
  const exact = doc.quills_latencyExecute;
  const source = exact ?? doc.latencyExecute ?? {};
  const divide = exact ? 1 : hosts;
  const mean = exact ? doc.quills_latencyExecute_mean : doc.latencyExecute_mean;
  const pick = (key) => Number(source[key] ?? 0) / divide;
  return {
    mean: Number(mean ?? 0) / divide,
    p50: pick("50"),
    p90: pick("90"),
    p99: pick("99"),
    p995: pick("99.5"),
  };
}

/** Everything a command tile shows, from one HystrixCommand document. */
export function commandView(doc) {
  const hosts = hostsOf(doc);
  const requests = Number(doc.requestCount || 0);
  const errors = Number(doc.errorCount || 0);
  // errors over requests weighs each host by its traffic; without counts, the average of hosts' values
  const errorPct = requests > 0 ? (100 * errors) / requests : Number(doc.errorPercentage || 0) / hosts;
  const isolation = valueCounts(doc.propertyValue_executionIsolationStrategy, hosts);
  const threadRejected = Number(doc.rollingCountThreadPoolRejected || 0);
  const semaphoreRejected = Number(doc.rollingCountSemaphoreRejected || 0);
  let rejected = threadRejected + semaphoreRejected;
  if (Object.keys(isolation).length === 1) rejected = isolation.THREAD ? threadRejected : semaphoreRejected;
  const rate = rateOf(requests, doc, hosts);
  return {
    name: String(doc.name),
    group: String(doc.group ?? ""),
    hosts,
    errorPct,
    rate,
    hostRate: rate / hosts,
    counts: {
      success: Number(doc.rollingCountSuccess || 0),
      shortCircuited: Number(doc.rollingCountShortCircuited || 0),
      badRequest: Number(doc.rollingCountBadRequests || 0),
      timeout: Number(doc.rollingCountTimeout || 0),
      rejected,
      failure: Number(doc.rollingCountFailure || 0),
    },
    latency: latencyOf(doc, hosts),
    circuit: circuitOf(doc),
  };
}

/** Everything a thread-pool tile shows, from one HystrixThreadPool document (gauges are cluster sums). */
export function poolView(doc) {
  const hosts = hostsOf(doc);
  const executions = Number(doc.rollingCountThreadsExecuted || 0);
  const rate = rateOf(executions, doc, hosts);
  const size = Number(doc.currentPoolSize || 0);
  const maxSize = Number(doc.currentMaximumPoolSize || 0) || size;
  const active = Number(doc.currentActiveCount || 0);
  return {
    name: String(doc.name),
    hosts,
    active,
    queued: Number(doc.currentQueueSize || 0),
    poolSize: size,
    maxActive: Number(doc.rollingMaxActiveThreads || 0),
    executions,
    queueSize: perHost(doc.propertyValue_queueSizeRejectionThreshold, hosts),
    rejected: Number(doc.rollingCountCommandRejections || 0),
    rate,
    hostRate: rate / hosts,
    // how busy: share of the pool's possible threads active now
    usePct: maxSize > 0 ? (100 * active) / maxSize : 0,
  };
}

/** Circle radius in px: sqrt scale of the per-host rate, 0..RATE_MAX/s to RADIUS_MIN..RADIUS_MAX. */
export function radiusOf(hostRate) {
  const share = Math.sqrt(Math.min(Math.max(hostRate, 0), RATE_MAX) / RATE_MAX);
  return RADIUS_MIN + share * (RADIUS_MAX - RADIUS_MIN);
}

function hex([r, g, b]) {
  return `#${[r, g, b].map((c) => Math.round(c).toString(16).padStart(2, "0")).join("")}`;
}

/** Circle colour for an error %: green below 10, #ffcc00 at 25, #ff9900 at 40, red from 50. */
export function colourOf(errorPct) {
  if (errorPct <= ERROR_STOPS[0][0]) return hex(ERROR_STOPS[0][1]);
  for (let i = 1; i < ERROR_STOPS.length; i += 1) {
    const [hi, to] = ERROR_STOPS[i];
    if (errorPct <= hi) {
      const [lo, from] = ERROR_STOPS[i - 1];
      const t = (errorPct - lo) / (hi - lo);
      return hex(from.map((c, k) => c + (to[k] - c) * t));
    }
  }
  return hex(ERROR_STOPS[ERROR_STOPS.length - 1][1]);
}

/** A number for a tile: integers as they are, others with one decimal; thousands as "12.3k". */
export function formatNumber(value, decimals = 1) {
  if (!Number.isFinite(value)) return "0";
  if (Math.abs(value) >= 10000) return `${(value / 1000).toFixed(1)}k`;
  return Number.isInteger(value) ? String(value) : value.toFixed(decimals);
}
