// odin-client.js: the JavaScript SDK for the odin-ws gateway (wire protocol v1 and the extensions
// in docs/protocol.md), the entry of the npm package `odin-ws-client` (clients/js). Plain ES
// modules, no dependencies, no build step, no DOM access: it runs in browsers (the gateway serves
// these files under /sdk/, and its page imports them from there) and in Node 20+ with npm `ws`
// (loaded on demand, or passed as options.WebSocket). This file is the public entry and the part
// that speaks the protocol; it leans on one module per concern, each beside it in src/:
//   odin-transport.js  the socket: connect deadline, heartbeat, reconnect backoff with jitter
//   odin-sequencer.js  seq order, gaps and their replay, duplicates, the stream position
//   odin-requests.js   request ids, reply matching, timeouts; OdinError
//   odin-channels.js   the channel-name rule, the channel sets kept across reconnects
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
//   - correlates every request with its reply through the request `id` (promises);
//   - latest-value subscriptions (docs/protocol.md): `subscribe(channels, {delivery: 'latest',
//     maxHz: 4})` lets the gateway skip messages of those channels (at most maxHz a second, each
//     the newest). The client remembers the options per channel and keeps them across
//     reconnects: a resume on the same instance keeps them on the gateway, a restore on another
//     instance sends them in the resume's `options`, and after resume_failed each group of
//     channels is subscribed again with its options. Options changed while disconnected are
//     sent once the client is open again. `seq` stays contiguous (skipped messages are never
//     numbered); a message's `conflated` says how many of its channel were skipped just
//     before it, and conflatedTotal(channel) adds them up. `latest: true` is short for
//     `delivery: 'latest'`;
//   - authentication (WS_AUTH=jwt): `getToken` (an async callback) gives the token sent as
//     `?token=` at connect. Before the token expires (its JWT `exp`, or the gateway's
//     `authenticated.expires_at`) the client asks for a fresh one and sends it in an `auth`
//     request on the open connection, so the gateway never closes it with 4001. After a 401
//     (npm `ws` reports the status; a browser only sees a connection that failed before it
//     opened), a 4001 close, or with a token about to expire, the next attempt gets a fresh token
//     first. A static `token` option works too (no refresh);
//   - compression: browsers negotiate permessage-deflate by themselves; in Node the client passes
//     `perMessageDeflate` (default true) to npm `ws`. `client.compression` tells whether the
//     current connection has it.
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
//   message        envelope {seq, pos, conflated, ts, type, channel, data} (`pos`: the
//                  JetStream stream sequence, JetStream mode only; `conflated`: messages of the
//                  channel skipped just before this one, `latest` subscriptions only, else 0);
//                  event.gap is {from, to} when the messages just before this one were lost
//                  for good, otherwise null
//   subscribed     {channels}                 the gateway confirmed a subscribe (plus delivery
//                  and maxHz when the request had options)
//   unsubscribed   {channels}
//   gap            {from, to}                 missing seqs detected; a replay is requested
//   replay_start   {from, to}
//   replay_done    {from, to, sent, first_available, lost}  lost: {from, to} or null
//   disconnected   {code, reason, status}     the socket closed (or was declared dead); status:
//                  the HTTP status of a refused upgrade when the WebSocket implementation
//                  reports it (npm `ws`), else null
//   reconnecting   {attempt, delayMs}         a reconnect is scheduled
//   resumed        {session, replayed, restored, previousSession, pos}  the session continues,
//                  nothing was lost; restored: true when an instance that did not run the
//                  session took it over: `session` is then its new id (client.session follows),
//                  previousSession the old one; pos: the reply's position (null without positions)
//   resume_failed  {session, newSession, message}  a fresh session; channels re-subscribed
//   pong           {rttMs}
//   token          {reason, expiresAt}        getToken() gave a token; reason: `connect`,
//                  `refresh` (before expiry, sent in an `auth` request), `unauthorized` (after a
//                  401 or a connection that failed before it opened), `expired` (after a 4001
//                  close, or it was about to expire); expiresAt: its exp in ms, or null
//   authenticated  {expiresAt}                the gateway took a refreshed token
//   error          {code, message, id, request}  the gateway refused a request (or a client
//                  problem: code `bad_frame`, `timeout`, `token_failed` when getToken() threw)
//
// Tests and demos that need a lossy or observable connection inject it: `options.WebSocket` takes
// any constructor with the browser WebSocket's interface, e.g. a subclass that records its
// sockets or drops chosen frames (tests/browser/client.test.mjs). The client has no code of its
// own for tests.

import {
  ChannelSet, chunkChannels, isChannelName, NAME_BYTES_PER_REQUEST, normaliseChannels,
} from './odin-channels.js';
import { OdinError, quiet, Requests } from './odin-requests.js';
import { Sequencer } from './odin-sequencer.js';
import { nowMs, Transport } from './odin-transport.js';

export { OdinError };
export { CHANNEL_NAME, CHANNEL_NAME_RULE, isChannelName } from './odin-channels.js';

const IS_NODE = typeof globalThis.process === 'object' && globalThis.process !== null &&
  typeof globalThis.process.versions === 'object' && Boolean(globalThis.process.versions.node);

// npm `ws`, loaded the first time a client in Node needs it (a browser never gets here). The
// specifier is a variable so that bundlers do not try to pull `ws` into a browser build.
let wsModule = null;
async function loadWs() {
  if (!wsModule) {
    const name = 'ws';
    wsModule = import(/* webpackIgnore: true */ /* @vite-ignore */ name).then((m) => m.WebSocket || m.default);
  }
  return wsModule;
}

/**
 * The expiry of a JWT (its `exp` claim) in milliseconds since the epoch, or null when the token
 * is not a JWT or has no `exp`. The signature is not checked: the gateway does that.
 */
export function tokenExpiry(token) {
  if (typeof token !== 'string') return null;
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  try {
    const b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    const claims = JSON.parse(atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4)));
    return typeof claims.exp === 'number' ? claims.exp * 1000 : null;
  } catch {
    return null;
  }
}

/** The range of a subscription's maxHz (docs/protocol.md, data.max_hz). */
export const MAX_HZ_MIN = 0.1;
export const MAX_HZ_MAX = 1000;

// A subscribe's delivery options as the client keeps them per channel: {delivery, maxHz, wire}
// where `wire` holds the request fields exactly as given (delivery and/or max_hz). Returns null
// without options, or throws an OdinError (`bad_request`) for options the gateway would refuse.
function deliveryOptions(delivery, maxHz) {
  if (delivery === undefined && maxHz === undefined) return null;
  if (delivery !== undefined && delivery !== 'all' && delivery !== 'latest') {
    throw new OdinError('bad_request', `delivery must be "all" or "latest", not ${JSON.stringify(delivery)}`);
  }
  if (maxHz !== undefined && !(typeof maxHz === 'number' && maxHz >= MAX_HZ_MIN && maxHz <= MAX_HZ_MAX)) {
    throw new OdinError('bad_request', `maxHz must be a number from ${MAX_HZ_MIN} to ${MAX_HZ_MAX}`);
  }
  if (maxHz !== undefined && delivery === 'all') {
    throw new OdinError('bad_request', 'maxHz needs delivery "latest"');
  }
  const wire = {};
  if (delivery !== undefined) wire.delivery = delivery;
  if (maxHz !== undefined) wire.max_hz = maxHz;
  return Object.freeze({ delivery: maxHz !== undefined ? 'latest' : delivery, maxHz: maxHz ?? null, wire });
}

// Groups channels by their options (the same entry object, or none), for one subscribe each.
function groupByOptions(channels, optionsOf) {
  const groups = new Map(); // entry or null -> channels
  for (const c of channels) {
    const o = optionsOf(c) ?? null;
    if (!groups.has(o)) groups.set(o, []);
    groups.get(o).push(c);
  }
  return [...groups];
}

/** Connection states, in the order a client usually goes through them. */
export const ClientState = Object.freeze({
  IDLE: 'idle', // constructed, connect() not called yet
  CONNECTING: 'connecting', // first connection under way
  RESUMING: 'resuming', // connected again, `resume` sent, waiting for the answer
  OPEN: 'open', // ready: subscribed channels flow
  RECONNECTING: 'reconnecting', // lost the connection; waiting for or opening the next one
  CLOSED: 'closed', // close() was called
});

/** The event type the client dispatches: `detail` plus, for `message`, `gap`. */
export class OdinEvent extends Event {
  constructor(type, detail, gap = null) {
    super(type);
    this.detail = detail;
    this.gap = gap;
  }
}

const DEFAULTS = {
  WebSocket: undefined, // constructor; omitted: npm `ws` in Node (else Node's own), globalThis.WebSocket elsewhere
  perMessageDeflate: true, // Node with npm `ws`: offer compression (or ws's options object)
  wsOptions: null, // Node with npm `ws`: more options for its constructor (headers, agent, ...)
  token: null, // a fixed token, sent as ?token= (WS_AUTH=jwt)
  getToken: null, // async () => token: called at connect, before expiry, after a 401 / 4001
  tokenRefreshMarginMs: 30000, // refresh this long before exp (at most half the token's life)
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
    // In Node the client prefers npm `ws` (compression, headers), loaded at the first connect;
    // without it, Node's own WebSocket (Node 22+).
    let WebSocket = this._opt.WebSocket || (IS_NODE ? null : globalThis.WebSocket);
    if (typeof WebSocket !== 'function' && !IS_NODE) {
      throw new TypeError('OdinClient: no WebSocket implementation; pass options.WebSocket');
    }
    if (typeof WebSocket !== 'function') WebSocket = null;
    if (this._opt.getToken !== null && typeof this._opt.getToken !== 'function') {
      throw new TypeError('OdinClient: options.getToken must be a function returning a token');
    }
    this._state = ClientState.IDLE;
    // Authentication: the token of the next (or current) connection and its expiry.
    this._token = typeof this._opt.token === 'string' ? this._opt.token : null;
    this._tokenExpiresAt = tokenExpiry(this._token);
    this._tokenStale = null; // why the next connection needs a fresh token, or null
    this._refreshTimer = null;
    this._attemptId = 0; // bumps on every connection attempt and close(): stale awaits stop

    this._welcome = null; // the current connection's welcome data
    this._welcomed = false; // a welcome was seen before: later ones are reconnects
    this._session = null;
    this._disconnectedAt = 0;
    this._resumeId = null;
    this._resumeChannels = null; // the channels sent with `resume`, or null (v1 request)
    this._resumeOptions = null; // channel -> options entry (or undefined) as sent with them
    // Delivery options (latest-value subscriptions): what the application asked for per
    // channel, and what the gateway is known to hold for this session. A channel the
    // application never gave options is on neither (the gateway's default, `all`).
    this._options = new Map(); // channel -> {delivery, maxHz, wire}
    this._gatewayOptions = new Map(); // channel -> the entry the gateway confirmed
    this._conflated = new Map(); // channel -> total of `conflated` delivered
    this._whenOpen = []; // {resolve, reject}: connect() promises and offline (un)subscribes

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
      conflated: 0, // messages the gateway skipped for latest subscriptions (sum of `conflated`)
      tokenFetches: 0, // getToken() calls that gave a token
      tokenRefreshes: 0, // tokens the gateway took in an `auth` request
      rttMs: null, // last heartbeat round trip
    };

    this._channels = new ChannelSet();
    this._requests = new Requests(this._opt.requestTimeoutMs);
    this._transport = new Transport(url, null, this._opt, {
      frame: (data) => this._onFrame(data),
      lost: (code, reason) => this._afterDisconnect(code, reason),
      heartbeat: () => this.ping().catch(() => {}),
    });
    this._seq = new Sequencer(this._opt, this._stats, {
      deliver: (env, gap) => this._deliver(env, gap),
      emit: (type, detail) => this._emit(type, detail),
      canReplay: () => this._state === ClientState.OPEN && this._transport.socket !== null,
      connected: () => this._transport.socket !== null,
      replay: (from, to) => this.request('replay', { from, to }),
    });
    if (WebSocket) this._useWebSocket(WebSocket);
  }

  // npm `ws` (and subclasses of it, as tests inject) take a third argument of options; browsers
  // and Node's own WebSocket do not.
  _useWebSocket(WebSocket) {
    const native = WebSocket === globalThis.WebSocket;
    const ctorOptions = IS_NODE && !native
      ? { perMessageDeflate: this._opt.perMessageDeflate, ...(this._opt.wsOptions || {}) }
      : null;
    this._transport.setWebSocket(WebSocket, ctorOptions);
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
  get position() { return this._seq.position; }
  /** The last seq delivered in order; everything before it was delivered or reported lost. */
  get lastSeq() { return this._seq.lastSeq; }
  /** The channels the application asked for, sorted. */
  get channels() { return this._channels.wanted; }
  /** The last welcome's data: {session, heartbeat_ms, replay_size, resume_ttl_ms}. */
  get serverInfo() { return this._welcome ? { ...this._welcome } : null; }
  get stats() { return { ...this._stats, buffered: this._seq.buffered }; }
  /**
   * Whether the current connection negotiated permessage-deflate (from the socket's
   * `extensions`; false while disconnected).
   */
  get compression() { return /permessage-deflate/.test(this._transport.extensions); }
  /** The extensions the gateway accepted on the current connection, as the socket reports them. */
  get extensions() { return this._transport.extensions; }
  /** The expiry (ms since the epoch) of the token in use, or null (no token, or no exp). */
  get tokenExpiresAt() { return this._tokenExpiresAt; }
  isSubscribed(channel) { return this._channels.wants(channel); }
  /**
   * The delivery options the application asked for on `channel`: {delivery, maxHz}
   * (`{delivery: 'all', maxHz: null}` when it never gave any).
   */
  channelOptions(channel) {
    const o = this._options.get(channel);
    return o ? { delivery: o.delivery, maxHz: o.maxHz } : { delivery: 'all', maxHz: null };
  }

  /**
   * Messages of `channel` the gateway skipped for this client (latest subscriptions): the sum
   * of the `conflated` counts delivered since the channel was subscribed. Messages received plus
   * this make how many were published on it meanwhile.
   */
  conflatedTotal(channel) { return this._conflated.get(channel) ?? 0; }

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
      this._transport.resetBackoff();
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
    this._attemptId += 1; // a getToken() or `ws` load under way opens nothing afterwards
    this._stopRefresh();
    this._transport.stop();
    // A replay outstanding on this socket will not be answered; left set, it would keep every
    // later gap from being replayed after a connect().
    this._seq.stop();
    this._transport.discard(code, reason);
    this._disconnectedAt = Date.now();
    this._requests.failAll(new OdinError('closed', 'the client was closed'));
    this._failWaiters(new OdinError('closed', 'the client was closed'));
    this._setState(ClientState.CLOSED);
  }

  /**
   * Closes the socket the way a network failure would, without ending the client: it
   * reconnects and resumes. For demos and tests.
   */
  drop(code = 4100, reason = 'dropped by the client') {
    this._transport.drop(code, reason);
  }

  // ---- channels ----------------------------------------------------------------------------

  /**
   * Subscribes to channels. The client remembers them and subscribes again after reconnects.
   * With `snapshot` (default true) the gateway first sends each channel's latest message.
   * `delivery` ('all' or 'latest') and `maxHz` (0.1 to 1000, implies 'latest') choose how the
   * channels are delivered (docs/protocol.md, latest-value subscriptions); they are sent only
   * when given, apply at once to channels already subscribed, and are kept per channel across
   * reconnects. Without them an existing subscription keeps its options.
   * Resolves with the channels the gateway confirmed; rejects with an OdinError (e.g.
   * `too_many_channels`, `bad_request`; those channels are then forgotten). While disconnected
   * it resolves once the client is open again and the channels are subscribed.
   * `latest: true` is short for `delivery: 'latest'`.
   * @param {string|string[]} channels
   * @param {{snapshot?: boolean, delivery?: 'all'|'latest', latest?: boolean, maxHz?: number}} [options]
   * @returns {Promise<string[]>}
   */
  subscribe(channels, { snapshot = this._opt.snapshot, delivery, latest, maxHz } = {}) {
    if (latest === true && delivery === undefined) delivery = 'latest';
    const list = normaliseChannels(channels);
    const invalid = list.find((c) => !isChannelName(c));
    if (invalid !== undefined || list.length === 0) {
      return quiet(Promise.reject(new OdinError('bad_request',
        invalid === undefined ? 'no channels' : `invalid channel name: ${invalid}`)));
    }
    let options;
    try {
      options = deliveryOptions(delivery, maxHz);
    } catch (e) {
      return quiet(Promise.reject(e));
    }
    this._channels.want(list);
    if (options) for (const c of list) this._options.set(c, options);
    const whenOpen = () => this._waitOpen().then(() => this._confirmedOf(list));
    if (this._state !== ClientState.OPEN) return quiet(whenOpen());
    // A connection lost before the reply is not a refusal: the channels stay wanted and are
    // subscribed again once the client is open (with the options asked for here).
    return quiet(this._sendSubscribe(list, snapshot, options).catch((e) => {
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
    const list = normaliseChannels(channels);
    this._channels.unwant(list);
    for (const c of list) {
      this._options.delete(c);
      this._gatewayOptions.delete(c);
      this._conflated.delete(c);
    }
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
    if (!this._transport.isOpen) {
      return quiet(Promise.reject(new OdinError('not_connected', 'the client is not connected')));
    }
    return quiet(this._requests.send((r) => this._transport.send(r), type, data));
  }

  /** addEventListener with the detail as the first argument; returns a function that removes it. */
  on(type, fn) {
    const listener = (event) => fn(event.detail, event);
    this.addEventListener(type, listener);
    return () => this.removeEventListener(type, listener);
  }

  // ---- connection --------------------------------------------------------------------------

  // One connection attempt: first what it needs and may have to wait for (npm `ws` in Node, a
  // token from getToken()), then the socket. Synchronous when it needs nothing.
  _openSocket() {
    if (this._state !== ClientState.RECONNECTING) this._setState(ClientState.CONNECTING);
    const attempt = ++this._attemptId;
    const ready = this._prepareAttempt();
    if (ready === null) {
      this._openNow();
      return;
    }
    ready.then(() => {
      if (attempt === this._attemptId && this._state !== ClientState.CLOSED) this._openNow();
    }, (e) => {
      if (attempt !== this._attemptId || this._state === ClientState.CLOSED) return;
      const code = e instanceof OdinError ? e.code : 'token_failed';
      this._emit('error', { code, message: String(e && e.message), id: null, request: null });
      if (code === 'no_websocket') {
        this._failWaiters(e);
        this.close();
        return;
      }
      // getToken() failed: try again later, like a connection that failed.
      this._tokenStale = this._tokenStale ?? 'connect';
      if (!this._opt.reconnect) {
        this._failWaiters(e instanceof OdinError ? e : new OdinError('token_failed', String(e && e.message)));
        this._setState(ClientState.CLOSED);
        return;
      }
      this._setState(ClientState.RECONNECTING);
      this._emit('reconnecting', this._transport.scheduleReconnect(() => this._openSocket()));
    });
  }

  _openNow() {
    try {
      this._transport.open(this._connectUrl());
    } catch (e) {
      // A malformed URL is not going to get better.
      this._emit('error', { code: 'bad_url', message: String(e && e.message), id: null, request: null });
      this.close();
      return;
    }
    this._welcome = null;
    this._resumeId = null;
  }

  // null when the attempt can go at once, else a promise of everything it waits for.
  _prepareAttempt() {
    let ready = null;
    if (!this._transport.hasWebSocket) {
      ready = loadWs().then((WebSocket) => {
        if (typeof WebSocket !== 'function') throw new Error('npm `ws` exports no WebSocket');
        this._useWebSocket(WebSocket);
      }).catch((e) => {
        // Without npm `ws`, Node's own WebSocket (Node 22+) will do, without the options.
        if (typeof globalThis.WebSocket === 'function') {
          this._useWebSocket(globalThis.WebSocket);
          return;
        }
        throw new OdinError('no_websocket',
          `no WebSocket implementation: install npm \`ws\` or pass options.WebSocket (${e && e.message})`);
      });
    }
    const reason = this._tokenReason();
    if (reason !== null) ready = (ready || Promise.resolve()).then(() => this._fetchToken(reason));
    return ready;
  }

  // Why the next connection needs a token from getToken(), or null when the one held will do.
  _tokenReason() {
    if (typeof this._opt.getToken !== 'function') return null;
    if (this._token === null) return 'connect';
    if (this._tokenStale !== null) return this._tokenStale;
    if (this._tokenExpiresAt !== null &&
      this._tokenExpiresAt - Date.now() <= this._opt.tokenRefreshMarginMs) return 'expired';
    return null;
  }

  // getToken(), bounded by connectTimeoutMs (a hanging token endpoint must not stall the client).
  _callGetToken(reason) {
    let timer;
    const deadline = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new OdinError('token_failed',
        `getToken() gave no token within ${this._opt.connectTimeoutMs} ms`)), this._opt.connectTimeoutMs);
    });
    return Promise.race([Promise.resolve().then(() => this._opt.getToken({ reason })), deadline])
      .then((token) => {
        if (typeof token !== 'string' || token === '') throw new OdinError('token_failed', 'getToken() gave no token');
        return token;
      })
      .finally(() => clearTimeout(timer));
  }

  async _fetchToken(reason) {
    const token = await this._callGetToken(reason);
    this._token = token;
    this._tokenExpiresAt = tokenExpiry(token);
    this._tokenStale = null;
    this._stats.tokenFetches += 1;
    this._emit('token', { reason, expiresAt: this._tokenExpiresAt });
    return token;
  }

  // The URL of the next socket: the client's, with `?token=` when it has a token.
  _connectUrl() {
    if (this._token === null) return this._url;
    const base = globalThis.location ? globalThis.location.href : undefined;
    const url = new URL(this._url, base);
    url.searchParams.set('token', this._token);
    return url.toString();
  }

  // Before the token expires: a fresh one from getToken(), sent in an `auth` request. At most
  // tokenRefreshMarginMs, and at most half its remaining life, ahead of its expiry.
  _scheduleRefresh(delayMs = null) {
    this._stopRefresh();
    if (typeof this._opt.getToken !== 'function' || this._tokenExpiresAt === null) return;
    const remaining = this._tokenExpiresAt - Date.now();
    if (delayMs === null) {
      delayMs = Math.max(250, remaining - Math.min(this._opt.tokenRefreshMarginMs, remaining / 2));
    }
    this._refreshTimer = setTimeout(() => {
      this._refreshTimer = null;
      this._refreshToken();
    }, delayMs);
  }

  _stopRefresh() {
    clearTimeout(this._refreshTimer);
    this._refreshTimer = null;
  }

  async _refreshToken() {
    if (this._state !== ClientState.OPEN) return; // the next open schedules it again
    const attempt = this._attemptId;
    const previous = this._tokenExpiresAt;
    try {
      const token = await this._callGetToken('refresh');
      const expiresAt = tokenExpiry(token);
      if (token === this._token || (expiresAt !== null && previous !== null && expiresAt <= previous)) {
        throw new OdinError('token_failed', 'getToken() gave no newer token');
      }
      this._stats.tokenFetches += 1;
      this._emit('token', { reason: 'refresh', expiresAt });
      if (this._state === ClientState.CLOSED) return;
      if (this._state !== ClientState.OPEN) {
        // The connection went meanwhile: the next one opens with this token.
        this._token = token;
        this._tokenExpiresAt = expiresAt;
        this._tokenStale = null;
        return;
      }
      const reply = await this.request('auth', { token });
      this._token = token;
      const confirmed = reply.data && reply.data.expires_at;
      this._tokenExpiresAt = typeof confirmed === 'number' ? confirmed : expiresAt;
      this._stats.tokenRefreshes += 1;
      this._emit('authenticated', { expiresAt: this._tokenExpiresAt });
      if (this._state === ClientState.OPEN) this._scheduleRefresh();
    } catch (e) {
      if (attempt !== this._attemptId || this._state !== ClientState.OPEN) return;
      // A refusal by the gateway (invalid_token, forbidden) was reported as an `error` event
      // already; the old token stays in force. Try again while it lasts; at its expiry the
      // gateway closes with 4001 and the next connection fetches a fresh token.
      if (!(e instanceof OdinError) || e.code === 'token_failed') {
        this._emit('error', { code: 'token_failed', message: String(e && e.message), id: null, request: null });
      }
      const remaining = previous === null ? 0 : previous - Date.now();
      if (remaining > 0) this._scheduleRefresh(Math.max(250, Math.min(5000, remaining / 4)));
    }
  }

  _afterDisconnect(code, reason) {
    const failure = this._transport.failure;
    const status = failure ? failure.status : null;
    const neverOpened = this._welcome === null;
    this._stopRefresh();
    this._transport.stop();
    this._seq.stop();
    this._disconnectedAt = Date.now();
    this._requests.failAll(new OdinError('disconnected', `connection closed (${code})`));
    if (this._state === ClientState.CLOSED) return;
    // The next connection needs a fresh token after a 4001 (token expired), and after a 401 (or,
    // where the WebSocket implementation does not tell the status, as in browsers, after an
    // upgrade that failed for a reason other than the network).
    if (code === 4001) {
      this._tokenStale = 'expired';
    } else if (neverOpened && (status === 401 || (status === null && !(failure && failure.networkError)))) {
      this._tokenStale = 'unauthorized';
    }
    const detail = { code, reason: reason || '', status };
    if (!this._opt.reconnect) {
      this._failWaiters(new OdinError('disconnected', `connection closed (${code})`));
      this._setState(ClientState.CLOSED);
      this._emit('disconnected', detail);
      return;
    }
    // The state changes first, so that listeners of `disconnected` see the client as offline.
    this._setState(ClientState.RECONNECTING);
    this._emit('disconnected', detail);
    this._emit('reconnecting', this._transport.scheduleReconnect(() => this._openSocket()));
  }

  // ---- inbound -----------------------------------------------------------------------------

  _onFrame(text) {
    let msg;
    try {
      msg = JSON.parse(typeof text === 'string' ? text : String(text));
    } catch {
      this._emit('error', { code: 'bad_frame', message: 'a frame that is not JSON', id: null, request: null });
      return;
    }
    if (msg === null || typeof msg !== 'object') return;
    if (typeof msg.seq === 'number') {
      this._seq.onData(msg);
      return;
    }
    switch (msg.type) {
      case 'welcome': this._onWelcome(msg.data || {}); break;
      case 'resumed': this._onResumed(msg); break;
      case 'subscribed': this._onSubscribed(msg); break;
      case 'unsubscribed': this._onUnsubscribed(msg); break;
      case 'replay_done': this._onReplayDone(msg); break;
      case 'pong': this._requests.settle(msg.id, msg); break;
      case 'authenticated': this._requests.settle(msg.id, msg); break;
      case 'error': this._onError(msg); break;
      default: break; // a message type from a later protocol version
    }
  }

  _onWelcome(data) {
    this._transport.welcomed();
    this._welcome = data;
    if (this._welcomed) this._stats.reconnects += 1;
    this._welcomed = true;
    this._emit('welcome', { ...data });
    this._transport.startHeartbeat(data.heartbeat_ms);
    const ttl = data.resume_ttl_ms ?? Infinity;
    const canResume = this._session !== null && Date.now() - this._disconnectedAt < ttl;
    if (!canResume) {
      this._freshSession(data.session);
      this._becomeOpen();
      return;
    }
    // `resume` must be the connection's first request.
    this._setState(ClientState.RESUMING);
    const ws = this._transport.socket;
    this._resumeId = this._requests.sendUnpromised((r) => this._transport.send(r), 'resume',
      this._resumeData(), () => this._transport.declareDead(ws, 'no answer to resume'));
  }

  // The `resume` request's data. With a position (JetStream mode) it also names last_pos and the
  // channels the session holds, so that an instance that never ran the session can restore it;
  // a gateway that knows the session ignores them. The rest of the application's set is
  // subscribed after the answer, as after any reconnect.
  _resumeData() {
    const data = { session: this._session, last_seq: this._seq.lastSeq };
    this._resumeChannels = null;
    this._resumeOptions = null;
    const channels = this._channels.held();
    // The request must stay under the gateway's frame limit (4096 bytes by default): a channel
    // set too large for it falls back to the v1 request, which only the same instance honours.
    if (this._seq.position === null || channels.length === 0 ||
      JSON.stringify(channels).length > NAME_BYTES_PER_REQUEST) return data;
    // The options of the channels that are not `all`, for an instance that restores the session
    // (one that knows it keeps its own; changes it lacks are sent after `resumed`).
    const options = {};
    for (const c of channels) {
      const o = this._options.get(c);
      if (o && o.delivery === 'latest') {
        options[c] = o.maxHz === null ? { delivery: 'latest' } : { delivery: 'latest', max_hz: o.maxHz };
      }
    }
    const withOptions = Object.keys(options).length > 0;
    if (withOptions && JSON.stringify({ channels, options }).length > NAME_BYTES_PER_REQUEST) return data;
    data.last_pos = this._seq.position;
    data.channels = channels;
    if (withOptions) data.options = options;
    this._resumeChannels = channels;
    this._resumeOptions = new Map(channels.map((c) => [c, this._options.get(c)]));
    this._seq.dropBuffer();
    return data;
  }

  _onResumed(msg) {
    this._requests.settle(msg.id, msg);
    this._resumeId = null;
    this._stats.resumes += 1;
    const data = msg.data || {};
    const previousSession = this._session;
    const restored = data.restored === true && this._resumeChannels !== null;
    if (restored) {
      // Another instance took the session over: the new id from now on, subscribed to exactly
      // the channels the request named.
      this._channels.restored(this._resumeChannels);
      this._seq.restored();
      // It holds the options the request named (the others `all`).
      this._gatewayOptions.clear();
      for (const [c, o] of this._resumeOptions) if (o) this._gatewayOptions.set(c, o);
    }
    this._resumeChannels = null;
    this._resumeOptions = null;
    if (typeof data.session === 'string' && data.session) this._session = data.session;
    this._seq.replyPos(data.pos);
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
    this._seq.flush();
  }

  _onResumeFailed(msg) {
    const old = this._session;
    this._resumeId = null;
    this._stats.resumeFailures += 1;
    this._freshSession(this._welcome.session);
    this._emit('resume_failed', { session: old, newSession: this._session, message: msg.data.message });
    this._becomeOpen();
  }

  _freshSession(session) {
    this._session = session;
    this._resumeChannels = null;
    this._resumeOptions = null;
    this._seq.restart();
    this._channels.forget();
    this._gatewayOptions.clear();
  }

  // Ready: bring the gateway's channel set in line with the application's, then wake up
  // connect() and the (un)subscribes made while disconnected.
  _becomeOpen() {
    this._transport.resetBackoff();
    this._setState(ClientState.OPEN);
    this._scheduleRefresh();
    const unsubscribe = this._channels.toUnsubscribe();
    const subscribe = this._channels.toSubscribe();
    const pending = [];
    if (unsubscribe.length) pending.push(this._sendUnsubscribe(unsubscribe));
    // Snapshots: a fresh session has no values yet, and after a resume these channels are new.
    // One subscribe per set of delivery options (none: a v1 subscribe).
    for (const [options, group] of groupByOptions(subscribe, (c) => this._options.get(c))) {
      pending.push(this._sendSubscribe(group, true, options));
    }
    // Channels the session holds whose options changed while the gateway could not hear of it.
    const stale = this._channels.confirmedOf(this._channels.wanted)
      .filter((c) => this._options.has(c) && this._options.get(c) !== this._gatewayOptions.get(c));
    for (const [options, group] of groupByOptions(stale, (c) => this._options.get(c))) {
      pending.push(this._sendSubscribe(group, false, options));
    }
    const waiters = this._whenOpen;
    this._whenOpen = [];
    Promise.allSettled(pending).then(() => {
      for (const w of waiters) w.resolve();
    });
  }

  _onSubscribed(msg) {
    this._channels.subscribed(msg.data.channels);
    this._seq.replyPos(msg.data.pos);
    this._requests.settle(msg.id, msg);
    const detail = { channels: [...msg.data.channels] };
    if (typeof msg.data.delivery === 'string') detail.delivery = msg.data.delivery;
    if (typeof msg.data.max_hz === 'number') detail.maxHz = msg.data.max_hz;
    this._emit('subscribed', detail);
  }

  _deliver(env, gap) {
    const conflated = typeof env.conflated === 'number' && env.conflated > 0 ? env.conflated : 0;
    env.conflated = conflated;
    if (conflated) {
      this._stats.conflated += conflated;
      this._conflated.set(env.channel, (this._conflated.get(env.channel) ?? 0) + conflated);
    }
    this.dispatchEvent(new OdinEvent('message', env, gap));
  }

  _onUnsubscribed(msg) {
    this._channels.unsubscribed(msg.data.channels);
    this._requests.settle(msg.id, msg);
    this._emit('unsubscribed', { channels: [...msg.data.channels] });
  }

  _onReplayDone(msg) {
    this._requests.settle(msg.id, msg);
    this._seq.onReplayDone(msg.data);
  }

  _onError(msg) {
    const data = msg.data || {};
    // Any refusal of the resume (resume_failed, or e.g. rate_limited) leaves this connection on
    // the fresh session its welcome announced.
    const ofResume = this._resumeId !== null && (msg.id === this._resumeId ||
      (msg.id === undefined && data.code === 'resume_failed'));
    if (ofResume) {
      this._requests.settle(this._resumeId, msg);
      this._onResumeFailed(msg);
      return;
    }
    const request = this._requests.refuse(msg.id, data.code, data.message);
    if (request && request.type === 'subscribe') this._channels.refused(request.data.channels);
    if (request && request.type === 'replay') this._seq.onReplayRefused(data.code);
    this._emit('error', { code: data.code, message: data.message, id: msg.id ?? null, request });
  }

  // ---- requests ----------------------------------------------------------------------------

  // `options`: the channels' delivery options entry, or null for a v1 subscribe.
  _sendSubscribe(channels, snapshot, options = null) {
    this._channels.asked(channels);
    return Promise.all(chunkChannels(channels).map((part) =>
      this.request('subscribe', { channels: part, snapshot: Boolean(snapshot), ...(options ? options.wire : {}) })
        .then((reply) => {
          if (options) for (const c of part) this._gatewayOptions.set(c, options);
          return reply;
        }, (e) => {
          // Refused: the gateway kept what it had, and so does the client (unless asked again
          // meanwhile). A lost connection is not a refusal: the options are sent once open.
          if (options && e.request && e.code !== 'timeout') {
            for (const c of part) {
              if (this._options.get(c) !== options) continue;
              const held = this._gatewayOptions.get(c);
              if (held && this._channels.wants(c)) this._options.set(c, held);
              else this._options.delete(c);
            }
          }
          throw e;
        })))
      .then((replies) => replies.flatMap((reply) => reply.data.channels));
  }

  _sendUnsubscribe(channels) {
    return Promise.all(chunkChannels(channels).map((part) => this.request('unsubscribe', { channels: part })))
      .then((replies) => replies.flatMap((reply) => reply.data.channels));
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
    const ok = this._channels.confirmedOf(list);
    if (ok.length === 0 && list.length) throw new OdinError('not_subscribed', `not subscribed: ${list.join(',')}`);
    return ok;
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
