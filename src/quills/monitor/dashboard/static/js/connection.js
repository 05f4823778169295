// One stream connection: EventSource, plus the states a user can act on.
//
// EventSource cannot see HTTP status codes, so after an error the same URL is probed once with fetch()
// (aborted as soon as the headers arrive, so a 200 probe frees its slot at once): a 503 is "too many
// clients", a 404 "not found"; anything else is "connection lost". Every case retries by itself.

export const STATES = {
  connecting: "connecting…",
  waiting: "waiting for the first command",
  live: "live",
  lost: "connection lost, reconnecting",
  full: "too many clients (503)",
  missing: "stream not found (404)",
};

const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 5000;
const FULL_RETRY_MS = 5000;
const PROBE_TIMEOUT_MS = 5000;


export class StreamConnection {
  // A stream that has sent documents sends one at least every 3 s (an instance every tick, an aggregator
  // its full state every 2 s and a meta document every 3 s); this much silence means a hung connection.
  static silenceMs = 15_000;

  /**
   * @param {string} url  stream URL, absolute or relative to the page
   * @param {{onDocument: (doc: object, conn: StreamConnection) => void,
   *          onState: (conn: StreamConnection) => void}} handlers
   */
  constructor(url, handlers) {
    this.url = url;
    this.absolute = new URL(url, document.baseURI).href;
    this.handlers = handlers;
    this.state = "connecting";
    this.detail = "";
    this.hasCommands = false;
    this.documents = 0;
    this.source = null;
    this.retryTimer = null;
    this.retryDelay = RETRY_MIN_MS;
    this.closed = false;
  }

  /** Short name for tiles and chips: the cluster, else host:port. */
  get label() {
    const parsed = new URL(this.absolute);
    const cluster = parsed.searchParams.get("cluster");
    return cluster ? `${cluster} @ ${parsed.host}` : parsed.host;
  }

  open() {
    this.closed = false;
    this.nextRetryAt = null;
    // while reconnecting, "connection lost" or "too many clients" stays up until the stream answers
    if (this.state === "connecting") this.setState("connecting");
    const source = new EventSource(this.absolute);
    this.source = source;
    source.onopen = () => {
      this.retryDelay = RETRY_MIN_MS;
      // a stream with commands sends them within a tick; until then the page says why it is empty
      this.setState(this.hasCommands ? "live" : "waiting");
    };
    source.onmessage = (event) => {
      this.lastMessageAt = Date.now();
      this.receive(event.data);
    };
    this.lastMessageAt = Date.now();
    clearInterval(this.watchdog);
    this.watchdog = setInterval(() => this.checkSilence(), 1000);
    source.onerror = () => {
      if (this.source !== source) return;
      this.drop();
      this.probe();
    };
  }

  /** Close the EventSource (and its watchdog) without changing the state. */
  drop() {
    clearInterval(this.watchdog);
    if (this.source) this.source.close();
    this.source = null;
  }

  checkSilence() {
    // only once documents have flowed: a stock Hystrix stream sends nothing but pings before its first command
    if (this.source && this.documents > 0 && Date.now() - this.lastMessageAt > StreamConnection.silenceMs) {
      this.drop();
      this.setState("lost");
      this.retry(RETRY_MIN_MS);
    }
  }

  receive(data) {
    let doc;
    try {
      doc = JSON.parse(data);
    } catch {
      return; // a line that is not JSON: ignore it, as the classic dashboard does
    }
    this.documents += 1;
    if (doc.type === "HystrixCommand" || doc.type === "HystrixThreadPool") {
      if (!this.hasCommands || this.state !== "live") {
        this.hasCommands = true;
        this.setState("live");
      }
    } else if (doc.type === "quills_status" && !this.hasCommands) {
      this.detail = String(doc.message ?? "");
      this.setState("waiting");
    }
    this.handlers.onDocument(doc, this);
  }

  async probe() {
    let status = 0;
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), PROBE_TIMEOUT_MS);
    try {
      const response = await fetch(this.absolute, { signal: abort.signal, cache: "no-store" });
      status = response.status;
    } catch {
      status = 0; // refused or reset: the server is gone
    } finally {
      clearTimeout(timer);
      abort.abort();
    }
    if (this.closed) return;
    if (status === 503) {
      this.setState("full");
      this.retry(FULL_RETRY_MS);
    } else if (status === 404) {
      this.setState("missing");
      this.retry(RETRY_MAX_MS);
    } else {
      this.setState("lost");
      this.retry(this.retryDelay);
      this.retryDelay = Math.min(this.retryDelay * 2, RETRY_MAX_MS);
    }
  }

  retry(delayMs) {
    clearTimeout(this.retryTimer);
    this.nextRetryAt = Date.now() + delayMs;
    this.retryTimer = setTimeout(() => this.open(), delayMs);
  }

  setState(state) {
    if (state !== "waiting") this.detail = "";
    this.state = state;
    this.handlers.onState(this);
  }

  close() {
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.drop();
  }
}
