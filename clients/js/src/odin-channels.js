// odin-channels.js: channel names for odin-client.js and the page. This file holds the only
// JavaScript copy of the channel-name rule (the gateway's is src/hub/channel_name.hpp; the two
// must agree). It also keeps the client's three views of its channels apart.

/** A channel name (docs/protocol.md): 1 to 128 characters of A-Z a-z 0-9 _ - . : */
export const CHANNEL_NAME = /^[A-Za-z0-9_.:-]{1,128}$/;

/** The same rule in words, for messages shown to people. */
export const CHANNEL_NAME_RULE = '1–128 of A–Z a–z 0–9 _ - . :';

export function isChannelName(name) {
  return typeof name === 'string' && CHANNEL_NAME.test(name);
}

// Bytes of channel names per (un)subscribe request, so that a large set is split into requests
// that stay under the gateway's default WS_MAX_MESSAGE_BYTES (4096; a bigger frame closes the
// connection with 1009).
export const NAME_BYTES_PER_REQUEST = 3000;

/** Splits a channel list into runs whose names add up to at most NAME_BYTES_PER_REQUEST. */
export function chunkChannels(channels) {
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

/** One channel or a list of them, as a list of distinct strings. */
export function normaliseChannels(channels) {
  const list = typeof channels === 'string' ? [channels] : [...channels];
  return [...new Set(list.map(String))];
}

/**
 * The client's channels: what the application wants, what the gateway confirmed for this
 * session, and what the gateway may hold (confirmed, or a subscribe sent without its reply yet).
 * They differ while requests are in flight and across reconnects; the client brings the gateway
 * in line with `wanted` each time it becomes open.
 */
export class ChannelSet {
  constructor() {
    this._desired = new Set();
    this._confirmed = new Set();
    this._maybe = new Set();
  }

  /** The channels the application asked for, sorted. */
  get wanted() { return [...this._desired].sort(); }
  wants(channel) { return this._desired.has(channel); }
  want(list) { for (const c of list) this._desired.add(c); }
  unwant(list) { for (const c of list) this._desired.delete(c); }

  /** A subscribe for `list` is on its way: the gateway may hold them from now on. */
  asked(list) { for (const c of list) this._maybe.add(c); }
  subscribed(list) { for (const c of list) this._confirmed.add(c); }

  unsubscribed(list) {
    for (const c of list) {
      this._confirmed.delete(c);
      this._maybe.delete(c);
    }
  }

  // Refused subscribes change nothing on the gateway: forget them, or every reconnect would ask
  // again.
  refused(list) {
    for (const c of list) {
      if (!this._confirmed.has(c)) {
        this._desired.delete(c);
        this._maybe.delete(c);
      }
    }
  }

  /** A fresh session holds nothing. */
  forget() {
    this._confirmed.clear();
    this._maybe.clear();
  }

  /** A session restored elsewhere holds exactly the channels its resume named. */
  restored(list) {
    this._confirmed = new Set(list);
    this._maybe = new Set(list);
  }

  /** Which of `list` the gateway confirmed. */
  confirmedOf(list) { return list.filter((c) => this._confirmed.has(c)); }

  // For a resume: what the gateway confirmed and the application still wants (one dropped while
  // offline would only be replayed and then unsubscribed), sorted.
  held() { return [...this._confirmed].filter((c) => this._desired.has(c)).sort(); }

  /** What the gateway may hold that the application no longer wants. */
  toUnsubscribe() { return [...this._maybe].filter((c) => !this._desired.has(c)); }

  /** What the application wants that the gateway has not confirmed. */
  toSubscribe() { return [...this._desired].filter((c) => !this._confirmed.has(c)); }
}
