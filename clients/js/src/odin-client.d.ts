// Type declarations of the odin-ws JavaScript SDK (hand-written; the code is odin-client.js and
// the modules beside it). tests/browser/sdk-js.test.mjs checks them with `tsc --noEmit --strict`
// against the packed tarball, with a program that must compile and one that must not.

/** A channel name: 1 to 128 characters of A-Z a-z 0-9 _ - . : */
export declare const CHANNEL_NAME: RegExp;
/** The channel-name rule in words, for messages shown to people. */
export declare const CHANNEL_NAME_RULE: string;
export declare function isChannelName(name: unknown): name is string;

/** The range of a subscription's maxHz. */
export declare const MAX_HZ_MIN: 0.1;
export declare const MAX_HZ_MAX: 1000;

/** The expiry (`exp` claim) of a JWT in ms since the epoch, or null; the signature is not checked. */
export declare function tokenExpiry(token: string | null | undefined): number | null;

export declare const ClientState: Readonly<{
  IDLE: 'idle';
  CONNECTING: 'connecting';
  RESUMING: 'resuming';
  OPEN: 'open';
  RECONNECTING: 'reconnecting';
  CLOSED: 'closed';
}>;
export type ClientState = (typeof ClientState)[keyof typeof ClientState];

/** Error codes of the gateway (docs/protocol.md) and of the client itself. */
export type OdinErrorCode =
  | 'bad_request' | 'unknown_type' | 'rate_limited' | 'too_many_channels' | 'channel_limit'
  | 'forbidden' | 'resume_failed' | 'invalid_token'
  | 'timeout' | 'disconnected' | 'closed' | 'not_connected' | 'not_subscribed' | 'bad_frame'
  | 'bad_url' | 'token_failed' | 'no_websocket'
  | (string & {});

/** A request as the client sent it. */
export interface OdinRequest {
  type: string;
  data?: Record<string, unknown>;
  id: number;
}

/** The one rejection type of the client's promises. */
export declare class OdinError extends Error {
  constructor(code: OdinErrorCode, message: string, extra?: { id?: unknown; request?: OdinRequest | null });
  readonly name: 'OdinError';
  readonly code: OdinErrorCode;
  readonly id: unknown;
  readonly request: OdinRequest | null;
}

/** A data message, delivered once and in `seq` order. */
export interface Envelope<T = unknown> {
  /** Per connection, contiguous (a resume continues the numbering). */
  seq: number;
  /** The JetStream stream position (JetStream mode only). */
  pos?: number;
  /** Messages of the channel the gateway skipped just before this one (latest subscriptions); 0 otherwise. */
  conflated: number;
  /** When the gateway ingested the message, ms since the epoch. */
  ts: number;
  type: string;
  channel: string;
  data: T;
}

/** seqs lost for good (the gateway no longer held them). */
export interface SeqSpan {
  from: number;
  to: number;
}

export interface WelcomeData {
  session: string;
  heartbeat_ms: number;
  replay_size: number;
  resume_ttl_ms: number;
  [key: string]: unknown;
}

export type TokenReason = 'connect' | 'refresh' | 'unauthorized' | 'expired';

/** The `detail` of each event. */
export interface OdinEventMap {
  state: { state: ClientState; previous: ClientState };
  welcome: WelcomeData;
  message: Envelope;
  subscribed: { channels: string[]; delivery?: 'all' | 'latest'; maxHz?: number };
  unsubscribed: { channels: string[] };
  gap: SeqSpan;
  replay_start: SeqSpan;
  replay_done: { from: number; to: number; sent: number; first_available: number | null; lost: SeqSpan | null };
  disconnected: { code: number; reason: string; status: number | null };
  reconnecting: { attempt: number; delayMs: number };
  resumed: { session: string; replayed: number; restored: boolean; previousSession: string | null; pos: number | null };
  resume_failed: { session: string | null; newSession: string; message: string };
  pong: { rttMs: number };
  token: { reason: TokenReason; expiresAt: number | null };
  authenticated: { expiresAt: number | null };
  error: { code: OdinErrorCode; message: string; id: unknown; request: OdinRequest | null };
}
export type OdinEventType = keyof OdinEventMap;

/** The event the client dispatches; `gap` is set on `message` events only. */
export declare class OdinEvent<K extends OdinEventType = OdinEventType> extends Event {
  constructor(type: K, detail: OdinEventMap[K], gap?: SeqSpan | null);
  readonly detail: OdinEventMap[K];
  /** On `message`: the seqs lost for good just before this message, or null. */
  readonly gap: SeqSpan | null;
}

/** Anything with the browser WebSocket's interface (npm `ws`, a browser's, a test double). */
export interface WebSocketLike {
  readonly readyState: number;
  readonly extensions?: string;
  // `any`: a browser's handlers take MessageEvent / CloseEvent, npm `ws`'s its own event types.
  onmessage: ((event: any) => void) | null;
  onclose: ((event: any) => void) | null;
  onerror: ((event: any) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}
/** npm `ws` is called with a third argument of options (perMessageDeflate, wsOptions); others with the URL alone. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[], options?: any) => WebSocketLike;

export interface OdinClientOptions {
  /**
   * The WebSocket constructor; default: npm `ws` in Node (loaded at connect; without it Node's own,
   * 22+), globalThis.WebSocket elsewhere.
   */
  WebSocket?: WebSocketConstructor;
  /** Node with npm `ws`: offer permessage-deflate (or ws's options for it). Default true. */
  perMessageDeflate?: boolean | object;
  /** Node with npm `ws`: more options for its constructor (headers, agent, ...). */
  wsOptions?: object | null;
  /** A fixed token, sent as `?token=` (WS_AUTH=jwt). */
  token?: string | null;
  /**
   * Gives a token (e.g. from your auth server): at connect, before the token expires (then sent
   * in an `auth` request), and after a 401 / a close with 4001. A rejection, or no answer within
   * connectTimeoutMs, is reported as an `error` event (`token_failed`) and retried with the
   * reconnect backoff.
   */
  getToken?: ((context: { reason: TokenReason }) => string | Promise<string>) | null;
  /** Refresh this long before the token's exp (at most half its remaining life). Default 30000. */
  tokenRefreshMarginMs?: number;
  /** Default of subscribe()'s `snapshot`. Default true. */
  snapshot?: boolean;
  /** Reconnect after a close the application did not ask for. Default true. */
  reconnect?: boolean;
  /** First reconnect delay. Default 250. */
  backoffInitialMs?: number;
  /** Cap of the exponential backoff. Default 15000. */
  backoffMaxMs?: number;
  /** Default 2. */
  backoffFactor?: number;
  /** The delay is randomly shortened by up to this fraction. Default 0.5. */
  backoffJitter?: number;
  /** Socket open + `welcome`. Default 10000. */
  connectTimeoutMs?: number;
  /** A request without a reply by then is rejected (`timeout`). Default 10000. */
  requestTimeoutMs?: number;
  /** Default (null): half the gateway's heartbeat_ms. */
  heartbeatIntervalMs?: number | null;
  /** Default (null): the gateway's heartbeat_ms; then the connection is declared dead. */
  pongTimeoutMs?: number | null;
  /** Reorder buffer bound: beyond it a gap is given up as lost. Default 10000. */
  maxBuffered?: number;
  /** Replays refused with `rate_limited` are retried this often, 1 s apart. Default 3. */
  replayRetries?: number;
}

export interface SubscribeOptions {
  /** The gateway first sends each channel's latest message. Default: the client's `snapshot` option. */
  snapshot?: boolean;
  /** 'all' (every message) or 'latest' (the gateway may skip messages, ends on the newest). */
  delivery?: 'all' | 'latest';
  /** Short for `delivery: 'latest'`. */
  latest?: boolean;
  /** At most this many messages a second per channel, each the newest (0.1 to 1000; implies latest). */
  maxHz?: number;
}

export interface ClientStats {
  received: number;
  duplicates: number;
  gaps: number;
  replays: number;
  lostMessages: number;
  lostGaps: number;
  reconnects: number;
  resumes: number;
  resumeFailures: number;
  conflated: number;
  tokenFetches: number;
  tokenRefreshes: number;
  rttMs: number | null;
  buffered: number;
}

export declare class OdinClient extends EventTarget {
  /** @param url the gateway's WebSocket URL, e.g. `ws://host:3002/ws` (without the token). */
  constructor(url: string, options?: OdinClientOptions);

  readonly url: string;
  readonly state: ClientState;
  /** The session id (null before the first welcome). */
  readonly session: string | null;
  /** The stream position (JetStream mode), or null. */
  readonly position: number | null;
  /** The last seq delivered in order. */
  readonly lastSeq: number;
  /** The channels the application asked for, sorted. */
  readonly channels: string[];
  readonly serverInfo: WelcomeData | null;
  readonly stats: ClientStats;
  /** Whether the current connection negotiated permessage-deflate. */
  readonly compression: boolean;
  /** The extensions the gateway accepted on the current connection. */
  readonly extensions: string;
  /** The expiry of the token in use (ms since the epoch), or null. */
  readonly tokenExpiresAt: number | null;

  isSubscribed(channel: string): boolean;
  channelOptions(channel: string): { delivery: 'all' | 'latest'; maxHz: number | null };
  /** The sum of the `conflated` counts delivered on `channel` since it was subscribed. */
  conflatedTotal(channel: string): number;

  /** Resolves once open (welcomed, and resumed when there was a session). */
  connect(): Promise<void>;
  /** Closes for good (no reconnect); a later connect() resumes while the gateway keeps the session. */
  close(code?: number, reason?: string): void;
  /** Closes the socket as a network failure would: the client reconnects and resumes. */
  drop(code?: number, reason?: string): void;

  /** Resolves with the channels the gateway confirmed. */
  subscribe(channels: string | Iterable<string>, options?: SubscribeOptions): Promise<string[]>;
  unsubscribe(channels: string | Iterable<string>): Promise<string[]>;
  /** A heartbeat; resolves with the round trip in ms. */
  ping(): Promise<number>;
  /** Any request; resolves with the whole reply. */
  request(type: string, data?: Record<string, unknown>): Promise<{ type: string; data?: any; id?: unknown; [key: string]: unknown }>;

  /** Listens to `type` with the detail first; returns a function that removes the listener. */
  on<K extends OdinEventType>(type: K, fn: (detail: OdinEventMap[K], event: OdinEvent<K>) => void): () => void;
}
