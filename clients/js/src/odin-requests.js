// odin-requests.js: request ids and reply matching for odin-client.js. Every request the client
// sends gets an id, and its reply (or an `error` naming that id, or a timeout, or the end of the
// connection) settles it exactly once; OdinError is the one rejection type of the client's API.

/** A refused request: `code` is the gateway's error code, or a client one (`timeout`, ...). */
export class OdinError extends Error {
  constructor(code, message, { id = null, request = null } = {}) {
    super(`${code}: ${message}`);
    this.name = 'OdinError';
    this.code = code;
    this.id = id;
    this.request = request;
  }
}

export class Requests {
  /** @param {number} timeoutMs  a request without a reply by then is rejected (`timeout`) */
  constructor(timeoutMs) {
    this._timeoutMs = timeoutMs;
    this._nextId = 1;
    this._pending = new Map(); // id -> {request, resolve, reject, timer}
  }

  /**
   * Sends `{type, data, id}` through `transmit` and resolves with the reply, or rejects with an
   * OdinError.
   * @returns {Promise<object>}
   */
  send(transmit, type, data) {
    const id = this._nextId++;
    const request = data === undefined ? { type, id } : { type, data, id };
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new OdinError('timeout', `no reply to ${type} within ${this._timeoutMs} ms`, { id, request }));
      }, this._timeoutMs);
      this._pending.set(id, { request, resolve, reject, timer });
      transmit(request);
    });
  }

  /**
   * Sends a request whose answer the caller handles itself (the client's `resume`, which
   * decides the connection's fate): no promise, and `onTimeout` instead of a rejection.
   * @returns {number} the request's id
   */
  sendUnpromised(transmit, type, data, onTimeout) {
    const id = this._nextId++;
    const request = { type, data, id };
    const timer = setTimeout(onTimeout, this._timeoutMs);
    this._pending.set(id, { request, resolve: () => {}, reject: () => {}, timer });
    transmit(request);
    return id;
  }

  /** A reply: resolves the request it answers, if that is still waiting. */
  settle(id, reply) {
    if (id === undefined) return;
    const entry = this._pending.get(id);
    if (!entry) return;
    this._pending.delete(id);
    clearTimeout(entry.timer);
    entry.resolve(reply);
  }

  /**
   * An `error` reply: rejects the request it names.
   * @returns {object|null} that request, or null when none was waiting
   */
  refuse(id, code, message) {
    const entry = id !== undefined ? this._pending.get(id) : undefined;
    if (!entry) return null;
    this._pending.delete(id);
    clearTimeout(entry.timer);
    entry.reject(new OdinError(code, message, { id, request: entry.request }));
    return entry.request;
  }

  /** Rejects everything still waiting: its replies can no longer come. */
  failAll(error) {
    const pending = [...this._pending.values()];
    this._pending.clear();
    for (const entry of pending) {
      clearTimeout(entry.timer);
      entry.reject(error);
    }
  }
}

// Marks a promise as handled so that callers who ignore it (fire-and-forget subscribes) do
// not get "unhandled rejection" reports; callers who await it still see the rejection.
export function quiet(promise) {
  promise.catch(() => {});
  return promise;
}
