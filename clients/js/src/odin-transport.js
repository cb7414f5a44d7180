// odin-transport.js: the socket under odin-client.js, one at a time: opening it, the deadline for
// the gateway's welcome, the heartbeat that notices a dead connection, and the delay before the
// next attempt (exponential backoff with jitter). It does not read the protocol: frames go up as
// they came, and the client says when a welcome arrived and when to try again. It also notes why
// an attempt failed, as far as the WebSocket implementation tells (npm `ws` reports the HTTP
// status of a refused upgrade, e.g. 401; a browser tells nothing), for the client's token logic.

const OPEN = 1; // WebSocket.OPEN, identical for browsers and npm `ws`

export function nowMs() {
  return globalThis.performance ? globalThis.performance.now() : Date.now();
}

export class Transport {
  /**
   * @param {string} url
   * @param {Function|null} WebSocket  the constructor; anything with the browser WebSocket's
   *   interface (onmessage, onclose, onerror, send, close, readyState) will do. null: given later
   *   with setWebSocket() (the client loads npm `ws` on demand in Node)
   * @param {object} options  the client's: connectTimeoutMs, heartbeatIntervalMs, pongTimeoutMs,
   *   backoffInitialMs, backoffMaxMs, backoffFactor, backoffJitter
   * @param {{frame(data), lost(code, reason), heartbeat()}} up  the client: a frame arrived; the
   *   socket is gone (closed, or declared dead); time to send a heartbeat
   */
  constructor(url, WebSocket, options, up) {
    this._url = url;
    this._WebSocket = WebSocket;
    this._opt = options;
    this._up = up;
    this._ws = null;
    this._attempt = 0;
    this._timers = { connect: null, heartbeat: null, reconnect: null };
    this._pingSentAt = null; // oldest heartbeat not followed by anything from the gateway
    this._ctorOptions = null; // third constructor argument (npm `ws` options), or null
    this._failure = null; // {status, networkError} of the current socket's error, if any
  }

  /**
   * The constructor to use from now on, and the options object passed as its third argument
   * (npm `ws`: perMessageDeflate, headers, ...), or null to call it with the URL alone.
   */
  setWebSocket(WebSocket, ctorOptions = null) {
    this._WebSocket = WebSocket;
    this._ctorOptions = ctorOptions;
  }

  get hasWebSocket() { return typeof this._WebSocket === 'function'; }

  /** The extensions the gateway accepted on the current socket ('' when none or unknown). */
  get extensions() {
    const ext = this._ws && this._ws.extensions;
    return typeof ext === 'string' ? ext : '';
  }

  /**
   * Why the last socket failed, when the implementation said: {status, networkError} where
   * status is the HTTP status of a refused upgrade (npm `ws` only) and networkError tells that
   * the connection failed below HTTP (refused, reset, DNS); both null/false when unknown.
   */
  get failure() { return this._failure; }

  /** The current socket, or null: a token for declareDead(). */
  get socket() { return this._ws; }
  get isOpen() { return this._ws !== null && this._ws.readyState === OPEN; }

  send(message) {
    this._ws.send(JSON.stringify(message));
  }

  /**
   * Opens a socket to `url` (the client's URL with its token, if any); throws when the URL is
   * malformed.
   */
  open(url = this._url) {
    this._failure = null;
    const ws = this._ctorOptions
      ? new this._WebSocket(url, undefined, this._ctorOptions)
      : new this._WebSocket(url);
    this._ws = ws;
    ws.onmessage = (event) => {
      this._pingSentAt = null; // anything at all from the gateway proves the connection alive
      this._up.frame(event.data);
    };
    ws.onclose = (event) => {
      if (ws !== this._ws) return;
      this._ws = null;
      this._up.lost(event.code, event.reason);
    };
    // A close event always follows; that is where it is handled. Only the cause is noted here.
    ws.onerror = (event) => {
      if (ws !== this._ws) return;
      const message = String((event && (event.message || (event.error && event.error.message))) || '');
      const status = /Unexpected server response: (\d{3})/.exec(message);
      this._failure = {
        status: status ? Number(status[1]) : null,
        networkError: Boolean(event && event.error && event.error.code),
      };
    };
    this._timers.connect = setTimeout(
      () => this.declareDead(ws, 'no welcome in time'), this._opt.connectTimeoutMs);
  }

  /** The gateway's welcome arrived: the connection is made. */
  welcomed() {
    clearTimeout(this._timers.connect);
    this._timers.connect = null;
  }

  startHeartbeat(serverHeartbeatMs) {
    const serverMs = serverHeartbeatMs > 0 ? serverHeartbeatMs : 30000;
    const interval = this._opt.heartbeatIntervalMs ?? Math.max(500, serverMs / 2);
    const timeout = this._opt.pongTimeoutMs ?? Math.max(1000, serverMs);
    const ws = this._ws;
    this._pingSentAt = null;
    this._timers.heartbeat = setInterval(() => {
      // Measured from the heartbeat, not from the last tick: timers in background tabs may run
      // late, but a late tick does not make a live connection look dead.
      if (this._pingSentAt !== null && nowMs() - this._pingSentAt > timeout) {
        this.declareDead(ws, 'no pong');
        return;
      }
      if (this._pingSentAt === null) this._pingSentAt = nowMs();
      this._up.heartbeat();
    }, interval);
  }

  // Gives up on a socket that is still open on paper (no welcome, no pong): a half-open TCP
  // connection may never deliver a close event, so the client does not wait for one. `ws` is
  // the socket the deadline was set for; a later one is left alone.
  declareDead(ws, why) {
    if (ws !== this._ws) return;
    this.discard(4000, why);
    this._up.lost(1006, why);
  }

  /** Closes the current socket without telling the client (it is the one asking). */
  discard(code, reason) {
    const ws = this._ws;
    if (!ws) return;
    this._ws = null;
    // Handlers stay set (as no-ops): npm `ws` throws on an `error` event nobody listens to.
    ws.onmessage = () => {};
    ws.onclose = () => {};
    ws.onerror = () => {};
    try {
      ws.close(code, reason);
    } catch {
      // already closing
    }
  }

  /** Closes the socket the way the other side would: the client hears of it as a loss. */
  drop(code, reason) {
    if (this._ws) this._ws.close(code, reason);
  }

  /**
   * Calls `reopen` after the next backoff delay.
   * @returns {{attempt: number, delayMs: number}}
   */
  scheduleReconnect(reopen) {
    const { backoffInitialMs, backoffMaxMs, backoffFactor, backoffJitter } = this._opt;
    const base = Math.min(backoffMaxMs, backoffInitialMs * backoffFactor ** this._attempt);
    const delayMs = Math.round(base * (1 - backoffJitter * Math.random()));
    this._attempt += 1;
    this._timers.reconnect = setTimeout(() => {
      this._timers.reconnect = null;
      reopen();
    }, delayMs);
    return { attempt: this._attempt, delayMs };
  }

  /** The next delay starts from backoffInitialMs again. */
  resetBackoff() {
    this._attempt = 0;
  }

  /** Stops every timer: the welcome deadline, the heartbeat, a scheduled reconnect. */
  stop() {
    for (const key of Object.keys(this._timers)) {
      clearTimeout(this._timers[key]);
      clearInterval(this._timers[key]);
      this._timers[key] = null;
    }
    this._pingSentAt = null;
  }
}
