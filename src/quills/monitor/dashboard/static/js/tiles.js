// Tiles: one per command and one per thread pool, built once and then updated in place.

import { colourOf, formatNumber, radiusOf } from "./model.js";

const SVG = "http://www.w3.org/2000/svg";
const CHART_W = 220;
const CHART_H = 80;
export const HISTORY_MS = 120_000; // the sparkline's span: 2 minutes
const SAMPLE_EVERY_MS = 1000;

// outcome counts in their conventional colours (see dashboard.css), in the classic's two columns
const OUTCOMES = [
  ["success", "Success"],
  ["shortCircuited", "Short-circuited"],
  ["badRequest", "Bad request"],
  ["timeout", "Timeout"],
  ["rejected", "Rejected"],
  ["failure", "Failure"],
];

const LATENCIES = [
  ["mean", "Mean"],
  ["p50", "Median"],
  ["p90", "90th"],
  ["p99", "99th"],
  ["p995", "99.5th"],
];

const POOL_FIELDS = [
  ["active", "Active"],
  ["queued", "Queued"],
  ["poolSize", "Pool size"],
  ["maxActive", "Max active"],
  ["executions", "Executions"],
  ["queueSize", "Queue size"],
];

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  return node;
}

function chart() {
  const root = svg("svg", { class: "chart", viewBox: `0 0 ${CHART_W} ${CHART_H}`, "aria-hidden": "true" });
  const spark = svg("polyline", { class: "spark", points: "" });
  const circle = svg("circle", { class: "rate-circle", cx: 60, cy: CHART_H / 2, r: 5 });
  root.append(spark, circle);
  return { root, spark, circle };
}

function header(view, streamLabel) {
  const head = el("header", "tile-head");
  head.append(el("h3", "name", view.name));
  if (view.group !== undefined && view.group !== view.name) head.append(el("span", "group", view.group));
  head.append(streamLabel);
  return head;
}

/** A tile's state: its element and the numbers it last showed. */
export class Tile {
  constructor(kind, key, view) {
    this.kind = kind;
    this.key = key;
    this.view = view;
    this.samples = [];
    this.lastSeen = Date.now();
    this.el = el("article", `tile ${kind}`);
    this.el.dataset.key = key;
    this.el.dataset.name = view.name;
    this.chart = chart();
    this.streamLabel = el("span", "stream-label");
    this.el.append(header(view, this.streamLabel), this.chart.root);
    this.refs = kind === "command" ? this.buildCommand() : this.buildPool();
  }

  buildCommand() {
    const refs = { counts: {}, latency: {} };
    const numbers = el("div", "numbers");
    refs.errorPct = el("div", "error-pct", "0 %");
    refs.errorPct.title = "Error percentage over the health window";
    const counts = el("div", "counts");
    for (const [key, label] of OUTCOMES) {
      const count = el("span", `count ${key}`, "0");
      count.title = label;
      count.dataset.outcome = key;
      refs.counts[key] = count;
      counts.append(count);
    }
    numbers.append(counts, refs.errorPct);
    const facts = el("dl", "facts");
    const fact = (label, cls) => {
      facts.append(el("dt", null, label));
      const dd = el("dd", cls, "0");
      facts.append(dd);
      return dd;
    };
    refs.hostRate = fact("Host", "host-rate");
    refs.clusterRate = fact("Cluster", "cluster-rate");
    refs.circuit = fact("Circuit", "circuit-state");
    refs.hosts = fact("Hosts", "hosts");
    const latency = el("dl", "latency");
    for (const [key, label] of LATENCIES) {
      latency.append(el("dt", null, label));
      const dd = el("dd", `lat-${key}`, "0ms");
      refs.latency[key] = dd;
      latency.append(dd);
    }
    this.el.append(numbers, facts, latency);
    return refs;
  }

  buildPool() {
    const refs = { fields: {} };
    const facts = el("dl", "facts pool-facts");
    for (const [key, label] of POOL_FIELDS) {
      facts.append(el("dt", null, label));
      const dd = el("dd", `pool-${key}`, "0");
      refs.fields[key] = dd;
      facts.append(dd);
    }
    this.el.append(facts);
    return refs;
  }

  /** Take a new view (from one document) and record a sparkline sample at most once a second. */
  update(view, now = Date.now()) {
    this.view = view;
    this.lastSeen = now;
    const last = this.samples[this.samples.length - 1];
    if (!last || now - last.t >= SAMPLE_EVERY_MS) this.samples.push({ t: now, rate: view.rate });
    else last.rate = view.rate;
    while (this.samples.length && now - this.samples[0].t > HISTORY_MS) this.samples.shift();
  }

  /** Name the tile's stream (shown only while the page watches several). */
  setStreamLabel(label) {
    if (this.streamLabel.textContent !== label) this.streamLabel.textContent = label;
    this.streamLabel.hidden = !label;
  }

  render(now = Date.now()) {
    const view = this.view;
    const isCommand = this.kind === "command";
    const pct = isCommand ? view.errorPct : view.usePct;
    const colour = colourOf(pct);
    this.chart.circle.setAttribute("r", radiusOf(view.hostRate).toFixed(1));
    this.chart.circle.setAttribute("fill", colour);
    this.chart.spark.setAttribute("points", this.sparkPoints(now));
    this.el.classList.toggle("stale", now - this.lastSeen > 10_000);
    if (isCommand) this.renderCommand(view, colour);
    else this.renderPool(view);
  }

  renderCommand(view, colour) {
    const refs = this.refs;
    for (const [key] of OUTCOMES) refs.counts[key].textContent = formatNumber(view.counts[key]);
    refs.errorPct.textContent = `${view.errorPct.toFixed(1)} %`;
    refs.errorPct.style.color = view.errorPct >= 10 ? colour : "";
    refs.hostRate.textContent = `${formatNumber(view.hostRate)}/s`;
    refs.clusterRate.textContent = `${formatNumber(view.rate)}/s`;
    refs.circuit.textContent = view.circuit.label;
    refs.hosts.textContent = String(view.hosts);
    for (const [key] of LATENCIES) refs.latency[key].textContent = `${Math.round(view.latency[key])}ms`;
    this.el.dataset.circuit = view.circuit.kind;
    this.el.dataset.health = view.errorPct >= 50 ? "bad" : view.errorPct >= 10 ? "warn" : "ok";
  }

  renderPool(view) {
    for (const [key] of POOL_FIELDS) this.refs.fields[key].textContent = formatNumber(view[key]);
    this.el.dataset.health = view.usePct >= 100 ? "bad" : view.usePct >= 50 ? "warn" : "ok";
  }

  sparkPoints(now) {
    if (this.samples.length < 2) return "";
    const top = Math.max(...this.samples.map((s) => s.rate), 1e-9);
    const left = 2;
    const width = CHART_W - left - 2;
    // the line spans the history it has, up to 2 minutes, so a fresh page already shows a trend
    const span = Math.min(HISTORY_MS, Math.max(10_000, now - this.samples[0].t));
    return this.samples
      .map((s) => {
        const x = left + width * (1 - (now - s.t) / span);
        const y = CHART_H - 6 - (CHART_H - 16) * (s.rate / top);
        return `${x.toFixed(1)},${y.toFixed(1)}`;
      })
      .join(" ");
  }
}
