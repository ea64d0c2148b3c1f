// One MTP connection to this server's /ws, as docs/PROTOCOL.md describes it: answers come in
// the order of the requests, push frames (meta.push) come in between, and a lost connection is
// reopened with backoff. Nothing here knows about the page.

const VERSION = { version: "1.0", revision: "17" };
// The server's default [SERVER] MAX_FRAME_SIZE; a bigger frame would close the connection (1009).
export const MAX_FRAME = 16 * 1024 * 1024;

export class MTPError extends Error {
  constructor(reply) {
    super(reply.errors ? reply.errors.detail : "error");
    this.code = reply.errors ? reply.errors.code : 0;
    this.reply = reply;
  }
}

export class Offline extends Error {}

export class Connection {
  constructor(url) {
    this.url = url;
    this.ws = null;
    this.waiting = [];       // resolvers of the requests sent, oldest first
    this.online = false;
    this.delay = 250;
    this.timer = 0;
    this.stopped = true;
    this.onpush = () => {};
    this.onstate = () => {};  // (online: boolean, closeCode)
  }

  start() {
    this.stopped = false;
    this.open();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000);
  }

  open() {
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onopen = () => {
      this.online = true;
      this.delay = 250;
      this.onstate(true, 0);
    };
    ws.onmessage = (event) => this.receive(event.data);
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      const wasOnline = this.online;
      this.online = false;
      for (const [, reject] of this.waiting.splice(0)) reject(new Offline(String(event.code)));
      if (wasOnline || event.code) this.onstate(false, event.code);
      if (this.stopped) return;
      // Backoff with jitter: 0.25 s doubling to 8 s.
      this.timer = setTimeout(() => this.open(), this.delay * (0.75 + Math.random() / 2));
      this.delay = Math.min(this.delay * 2, 8000);
    };
    ws.onerror = () => {};  // onclose follows and reports it
  }

  receive(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    if (frame.meta && frame.meta.push) {
      this.onpush(frame);
      return;
    }
    const next = this.waiting.shift();
    if (next) next[0](frame);
  }

  // Sends one request and resolves with its answer; MTPError for an error code, Offline when
  // the connection is lost before the answer came.
  request(type, data, meta) {
    const frame = { type, data: { ...data }, jsonapi: VERSION };
    if (meta) frame.meta = meta;
    const text = JSON.stringify(frame);
    if (text.length > MAX_FRAME) return Promise.reject(new MTPError(
      { errors: { code: 413, detail: "too large" } }));
    if (!this.online) return Promise.reject(new Offline("offline"));
    return new Promise((resolve, reject) => {
      this.waiting.push([(reply) => {
        if (reply.errors && reply.errors.code >= 400) reject(new MTPError(reply));
        else resolve(reply);
      }, reject]);
      this.ws.send(text);
    });
  }
}

// A client_id no earlier send of this tab used: milliseconds and a random tail, under 2^53.
let lastId = 0;
export function clientId() {
  lastId = Math.max(lastId + 1, Date.now() * 1000 + Math.floor(Math.random() * 1000));
  return lastId;
}
