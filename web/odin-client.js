// odin-client.js: the JavaScript client for the odin-ws gateway (wire protocol v1, see
// docs/protocol.md). One ES module, no dependencies, no DOM access: it runs in browsers and in
// Node 20+ (pass a WebSocket constructor, e.g. npm `ws`, where there is no global one).
//
// What it does for the application:
//   - delivers data messages exactly once and in `seq` order: a gap in `seq` is filled by a
//     `replay` request while later messages wait in a reorder buffer; what the gateway no
//     longer holds is skipped and reported on the next message (`event.gap`);
//   - keeps the connection alive with `heartbeat` requests and treats a missing `pong` as a dead
//     connection;
//   - reconnects after any close it did not ask for (exponential backoff with jitter), sends
//     `resume` as the first request of the new connection and carries on with the same session
//     and numbering; when the gateway answers `resume_failed`, it adopts the new session and
//     re-subscribes every channel with `snapshot: true` so current values arrive at once;
//   - resumes on whichever gateway instance the load balancer picks (JetStream mode, where data
//     messages carry the stream position `pos`): it tracks its *position* (the highest `pos` of
//     what it delivered in order, and the `pos` of `subscribed` / `resumed` replies once
//     everything before them was delivered), and its `resume` carries `last_pos` and the
//     subscribed channels, so an instance that never ran the session can take it over
//     (`resumed` with `restored: true` and a new session id, which the client adopts; seq goes
//     on without a break). Against a gateway without positions (embedded, core NATS, Redis) the
//     position stays null and `resume` is the v1 request;
//   - remembers the channel set the application asked for and re-applies it after a reconnect,
//     including changes made while disconnected;
//   - correlates every request with its reply through the request `id` (promises).
//
// Quick start:
//   import { OdinClient } from './odin-client.js';
//   const client = new OdinClient('ws://localhost:3002/ws');
//   client.on('message', (msg) => console.log(msg.seq, msg.channel, msg.data));
//   client.connect();
//   await client.subscribe(['BTCUSD', 'ETHUSD']);          // snapshot: true by default
//
// Events (an EventTarget; `client.on(type, fn)` calls fn(detail, event) and returns an
// unsubscribe function; `addEventListener(type, e => e.detail)` works too):
//   state          {state, previous}          one of ClientState
//   welcome        {session, heartbeat_ms, replay_size, resume_ttl_ms}  each new connection
//   message        envelope {seq, pos, ts, type, channel, data} (`pos`: the JetStream stream
//                  sequence, JetStream mode only); event.gap is {from, to} when the messages
//                  just before this one were lost for good, otherwise null
//   subscribed     {channels}                 the gateway confirmed a subscribe
//   unsubscribed   {channels}
//   gap            {from, to}                 missing seqs detected; a replay is requested
//   replay_start   {from, to}
//   replay_done    {from, to, sent, first_available, lost}  lost: {from, to} or null
//   disconnected   {code, reason}             the socket closed (or was declared dead)
//   reconnecting   {attempt, delayMs}         a reconnect is scheduled
//   resumed        {session, replayed, restored, previousSession, pos}  the session continues,
//                  nothing was lost; restored: true when an instance that did not run the
//                  session took it over: `session` is then its new id (client.session follows),
//                  previousSession the old one; pos: the reply's position (null without positions)
//   resume_failed  {session, newSession, message}  a fresh session; channels re-subscribed
//   pong           {rttMs}
//   error          {code, message, id, request}  the gateway refused a request (or a client
//                  problem: code `bad_frame`, `timeout`)

/** Connection states, in the order a client usually goes through them. */
export const ClientState = Object.freeze({
  IDLE: 'idle', // constructed, connect() not called yet
  CONNECTING: 'connecting', // first connection under way
  RESUMING: 'resuming', // connected again, `resume` sent, waiting for the answer
  OPEN: 'open', // ready: subscribed channels flow
  RECONNECTING: 'reconnecting', // lost the connection; waiting for or opening the next one
  CLOSED: 'closed', // close() was called
});

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

/** The event type the client dispatches: `detail` plus, for `message`, `gap`. */
export class OdinEvent extends Event {
  constructor(type, detail, gap = null) {
    super(type);
    this.detail = detail;
    this.gap = gap;
  }
}

const CHANNEL_NAME = /^[A-Za-z0-9_.:-]{1,128}$/;
// Bytes of channel names per (un)subscribe request, so that a large set is split into requests
// that stay under the gateway's default WS_MAX_MESSAGE_BYTES (4096; a bigger frame closes the
// connection with 1009).
const NAME_BYTES_PER_REQUEST = 3000;
const OPEN = 1; // WebSocket.OPEN, identical for browsers and npm `ws`

const DEFAULTS = {
  WebSocket: undefined, // constructor; globalThis.WebSocket when omitted
  snapshot: true, // default of subscribe()'s `snapshot`
  reconnect: true, // reconnect after a close the application did not ask for
  backoffInitialMs: 250, // first reconnect delay
  backoffMaxMs: 15000, // cap of the exponential backoff
  backoffFactor: 2,
  backoffJitter: 0.5, // the delay is randomly shortened by up to this fraction
  connectTimeoutMs: 10000, // socket open + `welcome`
  requestTimeoutMs: 10000, // a request without a reply by then is rejected (`timeout`)
  heartbeatIntervalMs: null, // null: half the gateway's heartbeat_ms
  pongTimeoutMs: null, // null: the gateway's heartbeat_ms; then the connection is dead
  maxBuffered: 10000, // reorder buffer bound: beyond it a gap is given up as lost
  replayRetries: 3, // replays refused with `rate_limited` are retried this often, 1 s apart
  _dropSeqForTest: null, // test hook: a seq, array of seqs, or (seq) => bool, dropped once
};

export class OdinClient extends EventTarget {
  /**
   * @param {string} url  the gateway's WebSocket URL, e.g. `ws://host:3002/ws`
   * @param {object} [options]  see DEFAULTS above
   */
  constructor(url, options = {}) {
    super();
    this._url = url;
    this._opt = { ...DEFAULTS, ...options };
    this._WebSocket = this._opt.WebSocket || globalThis.WebSocket;
    if (typeof this._WebSocket !== 'function') {
      throw new TypeError('OdinClient: no WebSocket implementation; pass options.WebSocket');
    }
    this._state = ClientState.IDLE;
    this._ws = null;
    this._welcome = null; // the current connection's welcome data
    this._welcomed = false; // a welcome was seen before: later ones are reconnects

    // Channels: what the application wants, what the gateway confirmed for this session, and
    // what it may hold (confirmed, or a subscribe sent without its reply yet).
    this._desired = new Set();
    this._confirmed = new Set();
    this._maybe = new Set();

    // Sequencing.
    this._session = null;
    this._lastSeq = 0; // last seq delivered to the application; all before it were handled
    this._buffer = new Map(); // seq -> envelope, waiting for an earlier one
    this._replay = null; // {from, to, tries} while a replay is outstanding
    this._lost = null; // {from, to} lost just before the next message to deliver
    this._drop = makeDropHook(this._opt._dropSeqForTest);
    this._loseNext = 0;

    // Position (JetStream mode; stays null against a gateway without `pos`). A reply's `pos`
    // covers what was sent before the reply: while earlier seqs still wait in the reorder
    // buffer it is held in _posAfter as {seq, pos} and taken once lastSeq reaches seq.
    this._pos = null;
    this._posAfter = [];
    this._resumeChannels = null; // the channels sent with `resume`, or null (v1 request)

    // Requests.
    this._nextId = 1;
    this._pending = new Map(); // id -> {request, resolve, reject, timer}
    this._whenOpen = []; // {resolve, reject}: connect() promises and offline (un)subscribes

    // Liveness and reconnects.
    this._attempt = 0;
    this._disconnectedAt = 0;
    this._timers = { connect: null, heartbeat: null, reconnect: null, replayRetry: null };
    this._pingSentAt = null; // oldest heartbeat not followed by anything from the gateway
    this._resumeId = null;

    this._stats = {
      received: 0, // data messages delivered
      duplicates: 0, // data messages already delivered (replay and resume overlap)
      gaps: 0, // gaps detected
      replays: 0, // replays answered
      lostMessages: 0, // seqs given up as lost
      lostGaps: 0, // gaps that replay could not fill
      reconnects: 0, // connections opened after the first
      resumes: 0,
      resumeFailures: 0,
      rttMs: null, // last heartbeat round trip
    };
  }

  // ---- read-only state -------------------------------------------------------------------

  get url() { return this._url; }
  get state() { return this._state; }
  /** The session id announced by the gateway (null before the first welcome). */
  get session() { return this._session; }
  /**
   * The client's position in the gateway's stream (JetStream mode): every message of the
   * subscribed channels up to it was delivered (or reported lost). null without positions.
   */
  get position() { return this._pos; }
  /** The last seq delivered in order; everything before it was delivered or reported lost. */
  get lastSeq() { return this._lastSeq; }
  /** The channels the application asked for, sorted. */
  get channels() { return [...this._desired].sort(); }
  /** The last welcome's data: {session, heartbeat_ms, replay_size, resume_ttl_ms}. */
  get serverInfo() { return this._welcome ? { ...this._welcome } : null; }
  get stats() { return { ...this._stats, buffered: this._buffer.size }; }
  isSubscribed(channel) { return this._desired.has(channel); }

  // ---- lifecycle ---------------------------------------------------------------------------

  /**
   * Opens the connection (and keeps it open until close()). Resolves once the client is open:
   * welcomed, and resumed when it had a session before. Calling it again while connected is a
   * no-op. After close(), connect() resumes the previous session when the gateway still has it.
   * @returns {Promise<void>}
   */
  connect() {
    const ready = this._waitOpen();
    if (this._state === ClientState.IDLE || this._state === ClientState.CLOSED) {
      this._attempt = 0;
      this._openSocket();
    }
    return ready;
  }

  /**
   * Closes the connection for good: no reconnect. Outstanding requests are rejected. The
   * gateway keeps the session for resume_ttl_ms, so a later connect() can still resume it.
   */
  close(code = 1000, reason = 'client closed') {
    if (this._state === ClientState.CLOSED) return;
    this._clearTimers();
    if (this._ws) this._discardSocket(code, reason);
    this._disconnectedAt = Date.now();
    this._failPending(new OdinError('closed', 'the client was closed'));
    this._failWaiters(new OdinError('closed', 'the client was closed'));
    this._setState(ClientState.CLOSED);
  }

  /**
   * Closes the socket the way a network failure would, without ending the client: it
   * reconnects and resumes. For demos and tests.
   */
  drop(code = 4100, reason = 'dropped by the client') {
    if (this._ws) this._ws.close(code, reason);
  }

  // ---- channels ----------------------------------------------------------------------------

  /**
   * Subscribes to channels. The client remembers them and subscribes again after reconnects.
   * With `snapshot` (default true) the gateway first sends each channel's latest message.
   * Resolves with the channels the gateway confirmed; rejects with an OdinError (e.g.
   * `too_many_channels`, `bad_request`; those channels are then forgotten). While disconnected
   * it resolves once the client is open again and the channels are subscribed.
   * @param {string|string[]} channels
   * @param {{snapshot?: boolean}} [options]
   * @returns {Promise<string[]>}
   */
  subscribe(channels, { snapshot = this._opt.snapshot } = {}) {
    const list = normalise(channels);
    const invalid = list.find((c) => !CHANNEL_NAME.test(c));
    if (invalid !== undefined || list.length === 0) {
      return quiet(Promise.reject(new OdinError('bad_request',
        invalid === undefined ? 'no channels' : `invalid channel name: ${invalid}`)));
    }
    for (const c of list) this._desired.add(c);
    const whenOpen = () => this._waitOpen().then(() => this._confirmedOf(list));
    if (this._state !== ClientState.OPEN) return quiet(whenOpen());
    // A connection lost before the reply is not a refusal: the channels stay wanted and are
    // subscribed again once the client is open.
    return quiet(this._sendSubscribe(list, snapshot).catch((e) => {
      if (e.code === 'disconnected' && this._state !== ClientState.CLOSED) return whenOpen();
      throw e;
    }));
  }

  /**
   * Unsubscribes. Messages already on their way may still arrive (they keep their seq).
   * @param {string|string[]} channels
   * @returns {Promise<string[]>}
   */
  unsubscribe(channels) {
    const list = normalise(channels);
    for (const c of list) this._desired.delete(c);
    if (this._state !== ClientState.OPEN) return quiet(this._waitOpen().then(() => list));
    return quiet(this._sendUnsubscribe(list));
  }

  /**
   * Sends a heartbeat and resolves with the round trip in milliseconds.
   * @returns {Promise<number>}
   */
  ping() {
    const start = nowMs();
    return quiet(this.request('heartbeat').then(() => {
      const rttMs = nowMs() - start;
      this._stats.rttMs = rttMs;
      this._emit('pong', { rttMs });
      return rttMs;
    }));
  }

  /**
   * Sends any request and resolves with its reply (the whole control message), or rejects
   * with an OdinError when the gateway answers `error`, on timeout, or when the connection
   * closes first. For request types this client has no method for.
   * @param {string} type
   * @param {object} [data]
   * @returns {Promise<object>}
   */
  request(type, data) {
    const ws = this._ws;
    if (!ws || ws.readyState !== OPEN) {
      return quiet(Promise.reject(new OdinError('not_connected', 'the client is not connected')));
    }
    const id = this._nextId++;
    const request = data === undefined ? { type, id } : { type, data, id };
    return quiet(new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new OdinError('timeout', `no reply to ${type} within ${this._opt.requestTimeoutMs} ms`, { id, request }));
      }, this._opt.requestTimeoutMs);
      this._pending.set(id, { request, resolve, reject, timer });
      ws.send(JSON.stringify(request));
    }));
  }

  /** addEventListener with the detail as the first argument; returns a function that removes it. */
  on(type, fn) {
    const listener = (event) => fn(event.detail, event);
    this.addEventListener(type, listener);
    return () => this.removeEventListener(type, listener);
  }

  /** Test and demo hook: pretend the next `count` data messages were lost on the way. */
  _loseNextForTest(count = 1) {
    this._loseNext += count;
  }

  // ---- connection --------------------------------------------------------------------------

  _openSocket() {
    if (this._state !== ClientState.RECONNECTING) this._setState(ClientState.CONNECTING);
    let ws;
    try {
      ws = new this._WebSocket(this._url);
    } catch (e) {
      // A malformed URL is not going to get better.
      this._emit('error', { code: 'bad_url', message: String(e && e.message), id: null, request: null });
      this.close();
      return;
    }
    this._ws = ws;
    this._welcome = null;
    this._resumeId = null;
    ws.onmessage = (event) => this._onFrame(event.data);
    ws.onclose = (event) => this._onSocketClosed(ws, event.code, event.reason);
    ws.onerror = () => {}; // a close event always follows; that is where it is handled
    this._timers.connect = setTimeout(
      () => this._declareDead(ws, 'no welcome in time'), this._opt.connectTimeoutMs);
  }

  _onSocketClosed(ws, code, reason) {
    if (ws !== this._ws) return;
    this._ws = null;
    this._afterDisconnect(code, reason);
  }

  // Gives up on a socket that is still open on paper (no welcome, no pong): a half-open TCP
  // connection may never deliver a close event, so the client does not wait for one.
  _declareDead(ws, why) {
    if (ws !== this._ws) return;
    this._discardSocket(4000, why);
    this._afterDisconnect(1006, why);
  }

  _discardSocket(code, reason) {
    const ws = this._ws;
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

  _afterDisconnect(code, reason) {
    this._clearTimers();
    this._disconnectedAt = Date.now();
    this._failPending(new OdinError('disconnected', `connection closed (${code})`));
    this._replay = null;
    if (this._state === ClientState.CLOSED) return;
    if (!this._opt.reconnect) {
      this._failWaiters(new OdinError('disconnected', `connection closed (${code})`));
      this._setState(ClientState.CLOSED);
      this._emit('disconnected', { code, reason: reason || '' });
      return;
    }
    // The state changes first, so that listeners of `disconnected` see the client as offline.
    this._setState(ClientState.RECONNECTING);
    this._emit('disconnected', { code, reason: reason || '' });
    const { backoffInitialMs, backoffMaxMs, backoffFactor, backoffJitter } = this._opt;
    const base = Math.min(backoffMaxMs, backoffInitialMs * backoffFactor ** this._attempt);
    const delayMs = Math.round(base * (1 - backoffJitter * Math.random()));
    this._attempt += 1;
    this._emit('reconnecting', { attempt: this._attempt, delayMs });
    this._timers.reconnect = setTimeout(() => {
      this._timers.reconnect = null;
      this._openSocket();
    }, delayMs);
  }

  _clearTimers() {
    for (const key of Object.keys(this._timers)) {
      clearTimeout(this._timers[key]);
      clearInterval(this._timers[key]);
      this._timers[key] = null;
    }
    this._pingSentAt = null;
  }

  _startHeartbeat() {
    const serverMs = this._welcome.heartbeat_ms > 0 ? this._welcome.heartbeat_ms : 30000;
    const interval = this._opt.heartbeatIntervalMs ?? Math.max(500, serverMs / 2);
    const timeout = this._opt.pongTimeoutMs ?? Math.max(1000, serverMs);
    const ws = this._ws;
    this._pingSentAt = null;
    this._timers.heartbeat = setInterval(() => {
      // Measured from the heartbeat, not from the last tick: timers in background tabs may run
      // late, but a late tick does not make a live connection look dead.
      if (this._pingSentAt !== null && nowMs() - this._pingSentAt > timeout) {
        this._declareDead(ws, 'no pong');
        return;
      }
      if (this._pingSentAt === null) this._pingSentAt = nowMs();
      this.ping().catch(() => {});
    }, interval);
  }

  // ---- inbound -----------------------------------------------------------------------------

  _onFrame(text) {
    this._pingSentAt = null; // anything at all from the gateway proves the connection alive
    let msg;
    try {
      msg = JSON.parse(typeof text === 'string' ? text : String(text));
    } catch {
      this._emit('error', { code: 'bad_frame', message: 'a frame that is not JSON', id: null, request: null });
      return;
    }
    if (msg === null || typeof msg !== 'object') return;
    if (typeof msg.seq === 'number') {
      this._onData(msg);
      return;
    }
    switch (msg.type) {
      case 'welcome': this._onWelcome(msg.data || {}); break;
      case 'resumed': this._onResumed(msg); break;
      case 'subscribed': this._onSubscribed(msg); break;
      case 'unsubscribed': this._onUnsubscribed(msg); break;
      case 'replay_done': this._onReplayDone(msg); break;
      case 'pong': this._settle(msg.id, msg); break;
      case 'error': this._onError(msg); break;
      default: break; // a message type from a later protocol version
    }
  }

  _onWelcome(data) {
    clearTimeout(this._timers.connect);
    this._timers.connect = null;
    this._welcome = data;
    if (this._welcomed) this._stats.reconnects += 1;
    this._welcomed = true;
    this._emit('welcome', { ...data });
    this._startHeartbeat();
    const ttl = data.resume_ttl_ms ?? Infinity;
    const canResume = this._session !== null && Date.now() - this._disconnectedAt < ttl;
    if (!canResume) {
      this._freshSession(data.session);
      this._becomeOpen();
      return;
    }
    // `resume` must be the connection's first request.
    this._setState(ClientState.RESUMING);
    const id = this._nextId++;
    this._resumeId = id;
    const request = { type: 'resume', data: this._resumeData(), id };
    const ws = this._ws;
    const timer = setTimeout(() => this._declareDead(ws, 'no answer to resume'), this._opt.requestTimeoutMs);
    this._pending.set(id, { request, resolve: () => {}, reject: () => {}, timer });
    ws.send(JSON.stringify(request));
  }

  // The `resume` request's data. With a position (JetStream mode) it also names last_pos and the
  // channels the session holds, so that an instance that never ran the session can restore it;
  // a gateway that knows the session ignores them. The channels are those the gateway confirmed
  // and the application still wants (one dropped while offline would only be replayed and then
  // unsubscribed); the rest of the application's set is subscribed after the answer, as before.
  _resumeData() {
    const data = { session: this._session, last_seq: this._lastSeq };
    this._resumeChannels = null;
    const channels = [...this._confirmed].filter((c) => this._desired.has(c)).sort();
    // The request must stay under the gateway's frame limit (4096 bytes by default): a channel
    // set too large for it falls back to the v1 request, which only the same instance honours.
    if (this._pos === null || channels.length === 0 ||
      JSON.stringify(channels).length > NAME_BYTES_PER_REQUEST) return data;
    data.last_pos = this._pos;
    data.channels = channels;
    this._resumeChannels = channels;
    // An instance that restores the session numbers what it re-sends from last_seq + 1 by
    // itself, so what the reorder buffer holds beyond lastSeq (the old connection's numbering)
    // must not be taken for it. Either answer makes the buffer redundant anyway: the instance
    // that ran the session re-sends every seq after last_seq, a restore everything after
    // last_pos, and resume_failed starts afresh.
    this._buffer = new Map();
    return data;
  }

  _onResumed(msg) {
    this._settle(msg.id, msg);
    this._resumeId = null;
    this._stats.resumes += 1;
    const data = msg.data || {};
    const previousSession = this._session;
    const restored = data.restored === true && this._resumeChannels !== null;
    if (restored) {
      // Another instance took the session over: the new id from now on, subscribed to exactly
      // the channels the request named. Reply positions held for seqs of the old numbering are
      // void; this reply's position covers them.
      this._confirmed = new Set(this._resumeChannels);
      this._maybe = new Set(this._resumeChannels);
      this._posAfter = [];
    }
    this._resumeChannels = null;
    if (typeof data.session === 'string' && data.session) this._session = data.session;
    this._replyPos(data.pos);
    this._emit('resumed', {
      session: this._session,
      replayed: data.replayed,
      restored,
      previousSession,
      pos: typeof data.pos === 'number' ? data.pos : null,
    });
    this._becomeOpen();
    // The gateway re-sent everything after last_seq: what the buffer still holds is either a
    // duplicate or later, and any gap left is new.
    this._flush();
  }

  _onResumeFailed(msg) {
    const old = this._session;
    this._resumeId = null;
    this._stats.resumeFailures += 1;
    this._freshSession(this._welcome.session);
    this._emit('resume_failed', { session: old, newSession: this._session, message: msg.data.message });
    this._becomeOpen();
  }

  // A new numbering: nothing of the old session can be delivered any more.
  _freshSession(session) {
    this._session = session;
    this._lastSeq = 0;
    this._buffer = new Map();
    this._resumeChannels = null;
    this._pos = null;
    this._posAfter = [];
    this._replay = null;
    this._lost = null;
    this._confirmed.clear();
    this._maybe.clear();
  }

  // Ready: bring the gateway's channel set in line with the application's, then wake up
  // connect() and the (un)subscribes made while disconnected.
  _becomeOpen() {
    this._attempt = 0;
    this._setState(ClientState.OPEN);
    const unsubscribe = [...this._maybe].filter((c) => !this._desired.has(c));
    const subscribe = [...this._desired].filter((c) => !this._confirmed.has(c));
    const pending = [];
    if (unsubscribe.length) pending.push(this._sendUnsubscribe(unsubscribe));
    // Snapshots: a fresh session has no values yet, and after a resume these channels are new.
    if (subscribe.length) pending.push(this._sendSubscribe(subscribe, true));
    const waiters = this._whenOpen;
    this._whenOpen = [];
    Promise.allSettled(pending).then(() => {
      for (const w of waiters) w.resolve();
    });
  }

  _onSubscribed(msg) {
    for (const c of msg.data.channels) this._confirmed.add(c);
    this._replyPos(msg.data.pos);
    this._settle(msg.id, msg);
    this._emit('subscribed', { channels: [...msg.data.channels] });
  }

  _onUnsubscribed(msg) {
    for (const c of msg.data.channels) {
      this._confirmed.delete(c);
      this._maybe.delete(c);
    }
    this._settle(msg.id, msg);
    this._emit('unsubscribed', { channels: [...msg.data.channels] });
  }

  _onError(msg) {
    const data = msg.data || {};
    // Any refusal of the resume (resume_failed, or e.g. rate_limited) leaves this connection on
    // the fresh session its welcome announced.
    const ofResume = this._resumeId !== null && (msg.id === this._resumeId ||
      (msg.id === undefined && data.code === 'resume_failed'));
    if (ofResume) {
      this._settle(this._resumeId, msg);
      this._onResumeFailed(msg);
      return;
    }
    const entry = msg.id !== undefined ? this._pending.get(msg.id) : undefined;
    const request = entry ? entry.request : null;
    if (entry) {
      this._pending.delete(msg.id);
      clearTimeout(entry.timer);
      entry.reject(new OdinError(data.code, data.message, { id: msg.id, request }));
    }
    if (request && request.type === 'subscribe') {
      // Refused subscribes change nothing on the gateway: forget them, or every reconnect
      // would ask again.
      for (const c of request.data.channels) {
        if (!this._confirmed.has(c)) {
          this._desired.delete(c);
          this._maybe.delete(c);
        }
      }
    }
    if (request && request.type === 'replay') {
      this._onReplayRefused(data.code);
    }
    this._emit('error', { code: data.code, message: data.message, id: msg.id ?? null, request });
  }

  // ---- requests ----------------------------------------------------------------------------

  _sendSubscribe(channels, snapshot) {
    for (const c of channels) this._maybe.add(c);
    return Promise.all(chunks(channels).map((part) =>
      this.request('subscribe', { channels: part, snapshot: Boolean(snapshot) })))
      .then((replies) => replies.flatMap((reply) => reply.data.channels));
  }

  _sendUnsubscribe(channels) {
    return Promise.all(chunks(channels).map((part) => this.request('unsubscribe', { channels: part })))
      .then((replies) => replies.flatMap((reply) => reply.data.channels));
  }

  _settle(id, reply) {
    if (id === undefined) return;
    const entry = this._pending.get(id);
    if (!entry) return;
    this._pending.delete(id);
    clearTimeout(entry.timer);
    entry.resolve(reply);
  }

  _failPending(error) {
    const pending = [...this._pending.values()];
    this._pending.clear();
    for (const entry of pending) {
      clearTimeout(entry.timer);
      entry.reject(error);
    }
  }

  _waitOpen() {
    if (this._state === ClientState.OPEN) return Promise.resolve();
    return quiet(new Promise((resolve, reject) => this._whenOpen.push({ resolve, reject })));
  }

  _failWaiters(error) {
    const waiters = this._whenOpen;
    this._whenOpen = [];
    for (const w of waiters) w.reject(error);
  }

  _confirmedOf(list) {
    const ok = list.filter((c) => this._confirmed.has(c));
    if (ok.length === 0 && list.length) throw new OdinError('not_subscribed', `not subscribed: ${list.join(',')}`);
    return ok;
  }

  // ---- sequencing --------------------------------------------------------------------------

  _onData(env) {
    const seq = env.seq;
    if (seq > this._lastSeq && !this._buffer.has(seq)) {
      if (this._loseNext > 0) {
        this._loseNext -= 1;
        return;
      }
      if (this._drop(seq)) return;
    }
    if (seq <= this._lastSeq || this._buffer.has(seq)) {
      this._stats.duplicates += 1;
      return;
    }
    if (seq === this._lastSeq + 1 && this._buffer.size === 0) {
      this._deliver(env);
      return;
    }
    this._buffer.set(seq, env);
    if (this._buffer.size > this._opt.maxBuffered) this._skipTo(this._firstBuffered() - 1);
    this._flush();
  }

  // Delivers what is contiguous; asks for a replay of the first hole, if any.
  _flush() {
    while (this._buffer.has(this._lastSeq + 1)) {
      const env = this._buffer.get(this._lastSeq + 1);
      this._buffer.delete(this._lastSeq + 1);
      this._deliver(env);
    }
    for (const seq of this._buffer.keys()) {
      if (seq <= this._lastSeq) this._buffer.delete(seq); // resume re-sent it
    }
    if (this._buffer.size === 0 || this._replay !== null) return;
    // During a resume the gateway is still re-sending: a hole now may yet be filled.
    if (this._state !== ClientState.OPEN || !this._ws) return;
    const from = this._lastSeq + 1;
    const to = this._firstBuffered() - 1;
    this._stats.gaps += 1;
    this._emit('gap', { from, to });
    this._replay = { from, to, tries: 0 };
    this._sendReplay();
  }

  _sendReplay() {
    const r = this._replay;
    this._emit('replay_start', { from: r.from, to: r.to });
    this.request('replay', { from: r.from, to: r.to }).catch((e) => {
      // Refusals are handled in _onReplayRefused; a timeout means the replay is not coming.
      if (e.code === 'timeout' && this._replay === r) this._finishReplay(r, null);
    });
  }

  _onReplayRefused(code) {
    const r = this._replay;
    if (!r) return;
    if (code === 'rate_limited' && r.tries < this._opt.replayRetries) {
      r.tries += 1;
      this._timers.replayRetry = setTimeout(() => {
        if (this._replay === r && this._ws) this._sendReplay();
      }, 1000);
      return;
    }
    this._finishReplay(r, null);
  }

  _onReplayDone(msg) {
    this._settle(msg.id, msg);
    const r = this._replay;
    // The data messages came before replay_done; what is still missing in the range is lost.
    if (r) this._finishReplay(r, msg.data);
  }

  _finishReplay(r, data) {
    this._replay = null;
    this._stats.replays += 1;
    const lost = this._skipTo(r.to);
    this._emit('replay_done', {
      from: r.from,
      to: r.to,
      sent: data ? data.sent : 0,
      first_available: data ? data.first_available : null,
      lost,
    });
    this._flush();
  }

  // Gives up on every missing seq up to `to`: delivers what is buffered, records the rest.
  // Returns the span of the seqs given up, or null.
  _skipTo(to) {
    let span = null;
    while (this._lastSeq < to) {
      const next = this._lastSeq + 1;
      const env = this._buffer.get(next);
      if (env) {
        this._buffer.delete(next);
        this._deliver(env);
      } else {
        this._lastSeq = next;
        this._lost = this._lost ? { from: this._lost.from, to: next } : { from: next, to: next };
        this._stats.lostMessages += 1;
        span = span ? { from: span.from, to: next } : { from: next, to: next };
      }
    }
    if (span) this._stats.lostGaps += 1;
    this._advancePos();
    return span;
  }

  _firstBuffered() {
    let first = Infinity;
    for (const seq of this._buffer.keys()) if (seq < first) first = seq;
    return first;
  }

  // A `subscribed` / `resumed` reply's position: valid once everything received before the
  // reply (up to the highest seq seen) has been delivered or given up.
  _replyPos(pos) {
    if (typeof pos !== 'number') return;
    let upTo = this._lastSeq;
    for (const seq of this._buffer.keys()) if (seq > upTo) upTo = seq;
    this._posAfter.push({ seq: upTo, pos });
    this._advancePos();
  }

  _advancePos() {
    if (this._posAfter.length === 0) return;
    this._posAfter = this._posAfter.filter(({ seq, pos }) => {
      if (seq > this._lastSeq) return true;
      if (this._pos === null || pos > this._pos) this._pos = pos;
      return false;
    });
  }

  _deliver(env) {
    this._lastSeq = env.seq;
    // Only what is delivered in order moves the position: a buffered later message must not
    // carry it past the ones still missing (a restore re-sends from the position on).
    if (typeof env.pos === 'number' && (this._pos === null || env.pos > this._pos)) this._pos = env.pos;
    this._advancePos();
    this._stats.received += 1;
    const gap = this._lost;
    this._lost = null;
    this.dispatchEvent(new OdinEvent('message', env, gap));
  }

  // ---- helpers -----------------------------------------------------------------------------

  _setState(state) {
    if (this._state === state) return;
    const previous = this._state;
    this._state = state;
    this._emit('state', { state, previous });
  }

  _emit(type, detail) {
    this.dispatchEvent(new OdinEvent(type, detail));
  }
}

// Splits a channel list into runs whose names add up to at most NAME_BYTES_PER_REQUEST.
function chunks(channels) {
  const out = [[]];
  let bytes = 0;
  for (const c of channels) {
    const size = c.length + 3; // quotes and comma; names are ASCII
    if (bytes + size > NAME_BYTES_PER_REQUEST && out[out.length - 1].length) {
      out.push([]);
      bytes = 0;
    }
    out[out.length - 1].push(c);
    bytes += size;
  }
  return out;
}

function normalise(channels) {
  const list = typeof channels === 'string' ? [channels] : [...channels];
  return [...new Set(list.map(String))];
}

// Marks a promise as handled so that callers who ignore it (fire-and-forget subscribes) do
// not get "unhandled rejection" reports; callers who await it still see the rejection.
function quiet(promise) {
  promise.catch(() => {});
  return promise;
}

function nowMs() {
  return globalThis.performance ? globalThis.performance.now() : Date.now();
}

function makeDropHook(spec) {
  if (spec === null || spec === undefined) return () => false;
  if (typeof spec === 'function') {
    const dropped = new Set();
    return (seq) => {
      if (dropped.has(seq) || !spec(seq)) return false;
      dropped.add(seq);
      return true;
    };
  }
  const left = new Set(Array.isArray(spec) ? spec : [spec]);
  return (seq) => left.delete(seq);
}
