// The page: streams from the URL (or found on the server), tiles, sorting, filter, listen mode.

import { Listener } from "./audio.js";
import { STATES, StreamConnection } from "./connection.js";
import { commandView, poolView } from "./model.js";
import { SORTS, matches, sortCommands, sortPools } from "./sorting.js";
import { Tile } from "./tiles.js";

const $ = (selector) => document.querySelector(selector);
const RENDER_EVERY_MS = 500;

const page = {
  connections: [], // StreamConnection, each with an `id` that prefixes its tiles' keys
  tiles: new Map(), // key -> Tile
  sort: "error-volume",
  filter: "",
  listener: new Listener(),
  nextId: 1,
  renderQueued: false,
};

// -- URL: the streams, the sort and the filter live in the query string -------------------------------
function readUrl() {
  const params = new URLSearchParams(location.search);
  const sort = params.get("sort");
  page.sort = SORTS.some(([key]) => key === sort) ? sort : "error-volume";
  page.filter = params.get("filter") ?? "";
  return params.getAll("stream").filter(Boolean);
}

function writeUrl() {
  const params = new URLSearchParams();
  for (const conn of page.connections) params.append("stream", conn.url);
  if (page.sort !== "error-volume") params.set("sort", page.sort);
  if (page.filter) params.set("filter", page.filter);
  const query = params.toString();
  history.replaceState(null, "", query ? `?${query}` : location.pathname);
}

/** Streams this server offers (its instance stream, or an aggregator's clusters), from config.json. */
async function offeredStreams() {
  try {
    const response = await fetch("config.json", { cache: "no-store" });
    if (response.ok) {
      const config = await response.json();
      if (Array.isArray(config.streams)) return config.streams.map(String);
    }
  } catch {
    // served without config.json (mounted elsewhere): assume an instance stream beside the page
  }
  return ["../hystrix.stream"];
}

// -- streams -------------------------------------------------------------------------------------------
/** Watch one more stream; false when the URL cannot be parsed. */
function addStream(url) {
  let absolute;
  try {
    absolute = new URL(url, document.baseURI).href;
  } catch {
    return false;
  }
  if (page.connections.some((conn) => conn.absolute === absolute)) return true;
  const conn = new StreamConnection(url, { onDocument, onState: renderStates });
  conn.id = page.nextId++;
  page.connections.push(conn);
  conn.open();
  writeUrl();
  renderStates();
  return true;
}

function removeStream(conn) {
  conn.close();
  page.connections = page.connections.filter((other) => other !== conn);
  for (const [key, tile] of page.tiles) {
    if (key.startsWith(`${conn.id}|`)) {
      tile.el.remove();
      page.tiles.delete(key);
    }
  }
  writeUrl();
  renderStates();
  scheduleRender();
}

function onDocument(doc, conn) {
  if (doc.type === "meta") {
    conn.reportingHosts = Number(doc.reportingHostsLast10Seconds ?? 0);
    renderStates();
    scheduleRender();
    return;
  }
  const kind = doc.type === "HystrixCommand" ? "command" : doc.type === "HystrixThreadPool" ? "pool" : null;
  if (!kind || doc.name === undefined) return;
  const key = `${conn.id}|${kind}|${doc.name}`;
  let tile = page.tiles.get(key);
  if (doc.deleteData === "true" || doc.deleteData === true) {
    if (tile) tile.el.remove();
    page.tiles.delete(key);
    return;
  }
  const view = kind === "command" ? commandView(doc) : poolView(doc);
  if (!tile) {
    tile = new Tile(kind, key, view);
    tile.conn = conn;
    tile.setStreamLabel(page.connections.length > 1 ? conn.label : "");
    page.tiles.set(key, tile);
    $(kind === "command" ? "#commands" : "#pools").append(tile.el);
  } else if (kind === "command" && tile.view.circuit.kind !== view.circuit.kind) {
    page.listener.circuitChanged(tile.view.circuit.kind, view.circuit.kind);
  }
  tile.update(view);
  if (tile.el.dataset.health === undefined) tile.render(); // a new tile never shows its placeholders
  scheduleRender();
}

// -- rendering -----------------------------------------------------------------------------------------
function scheduleRender() {
  if (page.renderQueued) return;
  page.renderQueued = true;
  setTimeout(render, 50);
}

function placeInOrder(container, tiles) {
  const current = [...container.children];
  if (current.length === tiles.length && current.every((node, i) => node === tiles[i].el)) return;
  for (const tile of tiles) container.append(tile.el);
}

function render() {
  page.renderQueued = false;
  const now = Date.now();
  const commands = [];
  const pools = [];
  const several = page.connections.length > 1;
  for (const tile of page.tiles.values()) {
    tile.setStreamLabel(several ? tile.conn.label : "");
    tile.render(now);
    tile.el.hidden = !matches(tile.view, page.filter);
    (tile.kind === "command" ? commands : pools).push(tile);
  }
  placeInOrder($("#commands"), sortCommands(commands, page.sort));
  placeInOrder($("#pools"), sortPools(pools, page.sort));
  $("#pools-section").hidden = pools.length === 0;
  renderEmpty(commands.length + pools.length);
}

/** The message shown instead of tiles: the most useful state among the streams. */
function renderEmpty(tileCount) {
  const empty = $("#empty");
  const states = page.connections.map((conn) => conn.state);
  let text = "";
  let state = "";
  if (!page.connections.length) {
    text = "No stream: add one above.";
    state = "none";
  } else if (!tileCount) {
    state = ["full", "missing", "lost", "waiting", "connecting"].find((s) => states.includes(s)) ?? "live";
    text = state === "live" ? "Waiting for data…" : STATES[state][0].toUpperCase() + STATES[state].slice(1);
    if (state === "waiting") {
      // an aggregator's meta document says whether any host reports at all
      const noHosts = page.connections.some((conn) => conn.state === "waiting" && conn.reportingHosts === 0);
      text = `Waiting for the first command: ${noHosts ? "no host is reporting yet" : "nothing has run yet"}.`;
    }
  }
  empty.textContent = text;
  empty.dataset.state = state;
  empty.hidden = !text;
}

function renderStates() {
  const list = $("#streams");
  list.replaceChildren(
    ...page.connections.map((conn) => {
      const chip = document.createElement("li");
      chip.className = "stream";
      chip.dataset.state = conn.state;
      const name = document.createElement("span");
      name.className = "stream-name";
      name.textContent = conn.label;
      name.title = conn.absolute;
      const state = document.createElement("span");
      state.className = "stream-state";
      let text = STATES[conn.state];
      const hosts = conn.reportingHosts;
      if (conn.state === "live" && hosts !== undefined) text += `, ${hosts} host${hosts === 1 ? "" : "s"}`;
      state.textContent = text;
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "remove";
      remove.textContent = "×";
      remove.title = "Stop watching this stream";
      remove.addEventListener("click", () => removeStream(conn));
      chip.append(name, state, remove);
      return chip;
    }),
  );
  document.body.dataset.states = page.connections.map((conn) => conn.state).join(" ");
  renderEmpty(page.tiles.size);
}

// -- controls ------------------------------------------------------------------------------------------
function buildSorts() {
  const nav = $("#sorts");
  for (const [key, label] of SORTS) {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.sort = key;
    button.textContent = label;
    button.addEventListener("click", () => {
      page.sort = key;
      markSort();
      writeUrl();
      render();
    });
    nav.append(button);
  }
  markSort();
}

function markSort() {
  for (const button of document.querySelectorAll("#sorts button")) {
    button.setAttribute("aria-pressed", String(button.dataset.sort === page.sort));
  }
}

function visibleCommandViews() {
  return [...page.tiles.values()].filter((t) => t.kind === "command" && !t.el.hidden).map((t) => t.view);
}

function bindControls(suggestions) {
  const list = $("#suggestions");
  for (const url of suggestions) {
    const option = document.createElement("option");
    option.value = url;
    list.append(option);
  }
  $("#add-stream").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("#stream-url");
    const url = input.value.trim();
    if (url && !addStream(url)) {
      input.setCustomValidity("Not a URL");
      input.reportValidity();
      return;
    }
    input.value = "";
  });
  $("#stream-url").addEventListener("input", (event) => event.target.setCustomValidity(""));
  const filter = $("#filter");
  filter.value = page.filter;
  filter.addEventListener("input", () => {
    page.filter = filter.value;
    writeUrl();
    render();
  });
  const listen = $("#listen");
  listen.addEventListener("click", () => {
    const on = !page.listener.enabled;
    if (on) page.listener.enable(visibleCommandViews);
    else page.listener.disable();
    listen.setAttribute("aria-pressed", String(on));
    listen.textContent = on ? "♪ Listening" : "♪ Listen";
  });
  $("#volume").addEventListener("input", (event) => page.listener.setVolume(event.target.value / 100));
  $("#mute").addEventListener("change", (event) => page.listener.setMuted(event.target.checked));
}

async function start() {
  const fromUrl = readUrl();
  buildSorts();
  const offered = await offeredStreams();
  bindControls(offered);
  for (const url of fromUrl.length ? fromUrl : offered) addStream(url);
  renderStates();
  setInterval(render, RENDER_EVERY_MS);
}

// for tests and the curious: the page's live state
window.quillsDashboard = {
  page,
  render,
  StreamConnection,
  order: () => [...document.querySelectorAll("#commands .tile:not([hidden])")].map((el) => el.dataset.name),
};

start();
