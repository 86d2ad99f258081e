// The daemon's event stream (GET /api/v1/events): reconnects by itself with backoff and
// asks for the events it missed (?since=<last eid>).

const MIN_DELAY_MS = 250;
const MAX_DELAY_MS = 5000;

export class EventStream {
  constructor({ onMessage, onOpen, onClose, onRetry }) {
    this.onMessage = onMessage;
    this.onRetry = onRetry || (() => {});
    this.onOpen = onOpen;
    this.onClose = onClose;
    this.lastEid = null;
    this.ws = null;
    this.timer = null;
    this.delay = MIN_DELAY_MS;
    this.stopped = true;
    this.connected = false;
  }

  url() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const since = this.lastEid === null ? "" : `?since=${this.lastEid}`;
    return `${proto}//${location.host}/api/v1/events${since}`;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close();
    this.ws = null;
  }

  connect() {
    clearTimeout(this.timer);
    let ws;
    try {
      ws = new WebSocket(this.url());
    } catch {
      this.schedule();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.delay = MIN_DELAY_MS;
      this.connected = true;
      this.onOpen();
    };
    ws.onmessage = (ev) => {
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      // The latest eid, not the largest: a restarted daemon numbers from 1 again.
      if (typeof msg.eid === "number") this.lastEid = msg.eid;
      this.onMessage(msg);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      const was = this.connected;
      this.connected = false;
      if (was) this.onClose();
      this.schedule();
    };
  }

  schedule() {
    if (this.stopped) return;
    // Full jitter keeps several screens from hammering a restarting daemon together.
    const wait = Math.round(MIN_DELAY_MS / 2 + Math.random() * this.delay);
    this.delay = Math.min(this.delay * 2, MAX_DELAY_MS);
    this.timer = setTimeout(() => this.connect(), wait);
    // A refused upgrade looks like a network error here: let the page ask why.
    this.onRetry();
  }
}
