// Tests the JavaScript SDK's client (clients/js/src/odin-client.js, from the source tree; the
// packed tarball is sdk-js.test.mjs's) under Node 20 with npm `ws` against the real gateway:
// ordered delivery, snapshots, request/reply correlation, a gap filled by replay, a gap the replay
// cannot fill, reconnect + resume after the socket dies or the gateway closes it, channel
// changes made while disconnected, resume_failed after a gateway restart; and, against scripted
// fake servers, that a connection without pongs is declared dead, the JetStream-mode resume
// on another instance (positions, `last_pos`, a restored session under a new id), and that a
// replay cut short by close() does not stop later gaps from being replayed. Latest-value
// subscriptions (docs/protocol.md): a maxHz cap against a channel published at ~100/s (rate,
// contiguous seq, conflated + received == published, ends on the last value), kept across a
// resume and re-applied after resume_failed; against a scripted JetStream gateway, the options
// in a restoring `resume` and options changed while disconnected.
//   node tests/browser/client.test.mjs --binary build/odin-ws
import WebSocket, { WebSocketServer } from 'ws';
import { ClientState, OdinClient } from '../../clients/js/src/odin-client.js';
import { argBinary, assert, Runner, sleep, startGateway, waitFor } from './gateway.mjs';

const binary = argBinary();
// A small replay ring makes "the ring no longer holds it" easy to reach.
const GATEWAY_ENV = { WS_REPLAY_SIZE: '8', WS_RESUME_TTL: '30s' };
let gw = await startGateway(binary, GATEWAY_ENV);
const runner = new Runner('client');
const clients = new Set();
runner.budget(100000, async () => {
  for (const c of clients) c.close();
  await gw.stop(1000);
});

// The WebSocket a test client is given (options.WebSocket, the client's one injection point):
// it remembers the socket in use, for tests that break it, and with `drop` (a seq, an array of
// seqs, or (seq) => bool) it loses each chosen data message the first time it arrives, as if
// lost on the way; a replay or resume brings it again.
function injectedWebSocket(drop) {
  const lose = dropOnce(drop);
  return class TestWebSocket extends WebSocket {
    constructor(...args) {
      super(...args);
      TestWebSocket.current = this;
    }

    get onmessage() { return super.onmessage; }

    set onmessage(fn) {
      super.onmessage = typeof fn !== 'function' ? fn : (event) => {
        if (!lose(event.data)) fn(event);
      };
    }
  };
}

function dropOnce(spec) {
  if (spec === null || spec === undefined) return () => false;
  const seqs = [spec].flat();
  const choose = typeof spec === 'function' ? spec : (seq) => seqs.includes(seq);
  const dropped = new Set();
  return (data) => {
    const seq = JSON.parse(String(data)).seq;
    if (typeof seq !== 'number' || dropped.has(seq) || !choose(seq)) return false;
    dropped.add(seq);
    return true;
  };
}

// A client that records what it delivers and the events it sees.
function client({ drop, ...options } = {}, url = gw.ws) {
  const TestWebSocket = injectedWebSocket(drop);
  const c = new OdinClient(url, { WebSocket: TestWebSocket, backoffInitialMs: 50, backoffMaxMs: 400, ...options });
  c.socket = () => TestWebSocket.current;
  c.got = [];
  c.events = [];
  c.on('message', (env, event) => c.got.push({ ...env, gap: event.gap }));
  for (const type of ['state', 'welcome', 'subscribed', 'unsubscribed', 'gap', 'replay_start', 'replay_done',
    'disconnected', 'reconnecting', 'resumed', 'resume_failed', 'error']) {
    c.on(type, (detail) => c.events.push({ type, detail }));
  }
  c.seen = (type) => c.events.filter((e) => e.type === type);
  clients.add(c);
  return c;
}

const seqs = (c) => c.got.map((m) => m.seq).join(',');
const range = (a, b) => Array.from({ length: b - a + 1 }, (_, i) => a + i).join(',');
const publishN = (channel, n, from = 0) =>
  gw.publish(Array.from({ length: n }, (_, i) => ({ channel, type: 'test', data: { i: from + i } })));

await runner.check('subscribe resolves with the reply; messages arrive in seq order', async () => {
  const c = client();
  await c.connect();
  assert(c.state === ClientState.OPEN && /^[0-9a-f]+$/.test(c.session), `state ${c.state} session ${c.session}`);
  const confirmed = await c.subscribe(['order'], { snapshot: false });
  assert(confirmed.join() === 'order', `subscribe resolved with ${confirmed}`);
  assert(c.seen('subscribed').length === 1, 'a subscribed event');
  await publishN('order', 20);
  await waitFor(() => c.got.length >= 20, 5000, '20 messages');
  assert(seqs(c) === range(1, 20), `seqs ${seqs(c)}`);
  assert(c.got.every((m, i) => m.data.i === i && m.channel === 'order' && m.type === 'test' && m.gap === null), 'payloads in order');
  assert(c.lastSeq === 20, `lastSeq ${c.lastSeq}`);
  const rtt = await c.ping();
  assert(typeof rtt === 'number' && rtt >= 0 && rtt < 1000, `rtt ${rtt}`);
  const gone = await c.unsubscribe('order');
  assert(gone.join() === 'order', `unsubscribe resolved with ${gone}`);
  await publishN('order', 3);
  await sleep(200);
  assert(c.got.length === 20, `messages after unsubscribe: ${c.got.length}`);
  c.close();
  assert(c.state === ClientState.CLOSED, c.state);
});

await runner.check('npm ws negotiates permessage-deflate: market data arrives compressed, byte for byte', async () => {
  const c = client();
  await c.connect();
  assert(/permessage-deflate/.test(c.socket().extensions), `extensions "${c.socket().extensions}"`);
  await c.subscribe(['deflate'], { snapshot: false });
  const before = await gw.stats();
  const published = Array.from({ length: 30 }, (_, i) => ({
    symbol: 'ETHUSD', seq: 5120000 + i, last: (2291.37 + i * 0.03).toFixed(2),
    bids: Array.from({ length: 5 }, (_, j) => [(2291.12 - j * 0.11 - i * 0.01).toFixed(2), (3.125 + j * 0.7 + i * 0.01).toFixed(4)]),
    asks: Array.from({ length: 5 }, (_, j) => [(2291.61 + j * 0.13 + i * 0.01).toFixed(2), (2.211 + j * 0.9 + i * 0.01).toFixed(4)]),
    volume24h: (812342.771 + i).toFixed(3), ts: 1733220000123 + i,
  }));
  await gw.publish(published.map((data) => ({ channel: 'deflate', type: 'book', data })));
  await waitFor(() => c.got.length >= 30, 5000, '30 messages');
  assert(seqs(c) === range(1, 30), `seqs ${seqs(c)}`);
  assert(c.got.every((m, i) => JSON.stringify(m.data) === JSON.stringify(published[i])), 'payloads byte for byte');
  const after = await gw.stats();
  assert(after.compressedMessages - before.compressedMessages === 30,
    `compressed ${after.compressedMessages - before.compressedMessages} of 30`);
  c.close();
});

await runner.check('snapshot: the latest message arrives right after subscribing', async () => {
  await gw.publish([{ channel: 'snap', data: { v: 1 } }, { channel: 'snap', data: { v: 2 } }]);
  const c = client();
  await c.connect();
  await c.subscribe('snap'); // snapshot defaults to true
  await waitFor(() => c.got.length >= 1, 3000, 'the snapshot');
  assert(c.got.length === 1 && c.got[0].seq === 1 && c.got[0].data.v === 2, JSON.stringify(c.got));
  c.close();
});

await runner.check('errors reject the request and are emitted; refused channels are forgotten', async () => {
  const c = client();
  await c.connect();
  let error = null;
  await c.request('subscribe', { channels: [] }).catch((e) => { error = e; });
  assert(error && error.code === 'bad_request', `error ${error}`);
  error = null;
  await c.request('frobnicate').catch((e) => { error = e; });
  assert(error && error.code === 'unknown_type', `error ${error}`);
  assert(c.seen('error').map((e) => e.detail.code).join() === 'bad_request,unknown_type', JSON.stringify(c.seen('error')));
  error = null;
  await c.subscribe('bad channel!').catch((e) => { error = e; });
  assert(error && error.code === 'bad_request' && !c.isSubscribed('bad channel!'), `client-side validation: ${error}`);
  c.close();
});

await runner.check('an artificial gap (a data message dropped on the way) is filled by replay, in order', async () => {
  const c = client({ drop: 3 });
  await c.connect();
  await c.subscribe('gap', { snapshot: false });
  await publishN('gap', 6);
  await waitFor(() => c.got.length >= 6, 5000, '6 messages');
  assert(seqs(c) === range(1, 6), `seqs ${seqs(c)}`);
  assert(c.got.map((m) => m.data.i).join() === '0,1,2,3,4,5', 'payloads in order');
  const gaps = c.seen('gap').map((e) => `${e.detail.from}-${e.detail.to}`);
  assert(gaps.join() === '3-3', `gap events ${gaps}`);
  assert(c.seen('replay_start').length === 1, 'replay_start');
  const done = c.seen('replay_done')[0]?.detail;
  assert(done && done.sent === 1 && done.lost === null, `replay_done ${JSON.stringify(done)}`);
  const s = c.stats;
  assert(s.gaps === 1 && s.replays === 1 && s.lostMessages === 0 && s.buffered === 0, JSON.stringify(s));
  assert(c.got.every((m) => m.gap === null), 'no message flagged');
  c.close();
});

await runner.check('a gap older than the replay ring is skipped, flagged, and delivery continues', async () => {
  // Drops 3..12: when 13 arrives the ring (8) no longer holds 3.
  const c = client({ drop: (seq) => seq >= 3 && seq <= 12 });
  await c.connect();
  await c.subscribe('lost', { snapshot: false });
  await publishN('lost', 30);
  await waitFor(() => c.lastSeq >= 30 && c.stats.buffered === 0, 5000, 'seq 30');
  const done = c.seen('replay_done')[0]?.detail;
  assert(done && done.from === 3 && done.to === 12 && done.first_available > 3, `replay_done ${JSON.stringify(done)}`);
  // How much the ring still held depends on how far the gateway got before the replay request.
  const firstKept = Math.min(done.first_available, 13);
  assert(done.sent === 13 - firstKept, `sent ${done.sent}`);
  assert(done.lost && done.lost.from === 3 && done.lost.to === firstKept - 1, `lost ${JSON.stringify(done.lost)}`);
  const delivered = c.got.map((m) => m.seq).join();
  assert(delivered === `1,2,${range(firstKept, 30)}`, `delivered ${delivered}`);
  const flagged = c.got.filter((m) => m.gap);
  assert(flagged.length === 1 && flagged[0].seq === firstKept &&
    flagged[0].gap.from === 3 && flagged[0].gap.to === firstKept - 1, `flagged ${JSON.stringify(flagged)}`);
  assert(c.stats.lostMessages === firstKept - 3 && c.stats.lostGaps === 1, JSON.stringify(c.stats));
  console.log(`  (replay ring held from seq ${done.first_available}; lost ${done.lost.from}-${done.lost.to})`);
  c.close();
});

await runner.check('reconnect + resume after the TCP connection dies', async () => {
  const c = client();
  await c.connect();
  await c.subscribe('res', { snapshot: false });
  await publishN('res', 2, 1);
  await waitFor(() => c.got.length >= 2, 5000, '2 messages');
  const session = c.session;
  c.socket()._socket.destroy(); // a network failure: no close handshake
  await publishN('res', 2, 3); // published while the client is away
  await waitFor(() => c.seen('resumed').length === 1, 5000, 'resumed');
  await waitFor(() => c.got.length >= 4, 5000, 'the missed messages');
  await publishN('res', 1, 5);
  await waitFor(() => c.got.length >= 5, 5000, 'a live message after the resume');
  assert(c.session === session, `session ${c.session} != ${session}`);
  assert(c.got.map((m) => m.data.i).join() === '1,2,3,4,5', c.got.map((m) => m.data.i).join());
  assert(seqs(c) === range(1, 5), seqs(c));
  const resumed = c.seen('resumed')[0].detail;
  assert(resumed.session === session && resumed.replayed === 2, JSON.stringify(resumed));
  // The embedded broker has no stream positions: v1 resume, nothing restored.
  assert(resumed.restored === false && resumed.pos === null && c.position === null, JSON.stringify(resumed));
  assert(c.seen('reconnecting').length === 1, 'one reconnect scheduled');
  const s = c.stats;
  assert(s.reconnects === 1 && s.resumes === 1 && s.resumeFailures === 0 && s.gaps === 0, JSON.stringify(s));
  const states = c.seen('state').map((e) => e.detail.state).join('>');
  assert(states === 'connecting>open>reconnecting>resuming>open', states);
  c.close();
});

await runner.check('reconnect + resume after the gateway closes the connection (1003)', async () => {
  const c = client();
  await c.connect();
  await c.subscribe('srv', { snapshot: false });
  await publishN('srv', 3);
  await waitFor(() => c.got.length >= 3, 5000, '3 messages');
  const session = c.session;
  c.socket().send(Buffer.from([1, 2, 3])); // binary frames are a protocol error: the gateway closes
  await waitFor(() => c.seen('disconnected').length === 1, 3000, 'the close');
  assert(c.seen('disconnected')[0].detail.code === 1003, JSON.stringify(c.seen('disconnected')));
  await publishN('srv', 2, 3);
  await waitFor(() => c.seen('resumed').length === 1, 5000, 'resumed');
  await waitFor(() => c.got.length >= 5, 5000, 'the missed messages');
  assert(c.session === session && seqs(c) === range(1, 5), `${c.session} ${seqs(c)}`);
  c.close();
});

await runner.check('channel changes made while disconnected are applied after the resume', async () => {
  const c = client();
  await c.connect();
  await c.subscribe(['keep', 'drop'], { snapshot: false });
  let added;
  let removed;
  let stateThen;
  const off = c.on('disconnected', () => {
    off();
    stateThen = c.state;
    added = c.subscribe('added', { snapshot: false });
    removed = c.unsubscribe('drop');
  });
  c.socket()._socket.destroy();
  await waitFor(() => added, 2000, 'the disconnect');
  assert(stateThen === ClientState.RECONNECTING, `state when disconnected is emitted: ${stateThen}`);
  assert(c.channels.join() === 'added,keep', c.channels.join());
  assert((await added).join() === 'added', 'offline subscribe resolves once subscribed');
  await removed;
  assert(c.seen('resumed').length === 1, 'resumed');
  await gw.publish([{ channel: 'drop', data: 'no' }, { channel: 'keep', data: 'k' }, { channel: 'added', data: 'a' }]);
  await waitFor(() => c.got.length >= 2, 5000, '2 messages');
  await sleep(150);
  assert(c.got.map((m) => m.data).join() === 'k,a', c.got.map((m) => m.data).join());
  c.close();
});

await runner.check('resume_failed (unknown session): fresh session, channels re-subscribed', async () => {
  const c = client();
  c.subscribe('fresh');
  // As if this client had a session the gateway has never heard of.
  c._session = '0123456789abcd00';
  c._seq.lastSeq = 5;
  c._disconnectedAt = Date.now();
  await c.connect();
  const failed = c.seen('resume_failed')[0]?.detail;
  assert(failed && failed.session === '0123456789abcd00' && failed.newSession === c.session, JSON.stringify(failed));
  assert(c.lastSeq === 0, `lastSeq ${c.lastSeq}`);
  await waitFor(() => c.seen('subscribed').length === 1, 3000, 'the re-subscribe');
  await gw.publish({ channel: 'fresh', data: 'new' });
  await waitFor(() => c.got.length >= 1, 5000, 'a message on the fresh session');
  assert(c.got[0].seq === 1 && c.got[0].data === 'new', JSON.stringify(c.got[0]));
  c.close();
});

await runner.check('gateway restart: backoff while down, resume_failed, snapshot re-subscribe', async () => {
  const c = client({ backoffInitialMs: 100, backoffMaxMs: 300 });
  await c.connect();
  await c.subscribe('boot', { snapshot: false });
  await publishN('boot', 3);
  await waitFor(() => c.got.length >= 3, 5000, '3 messages');
  const oldSession = c.session;
  const port = gw.port;
  await gw.stop(); // graceful drain: closes with 1001, sessions are gone
  await waitFor(() => c.seen('reconnecting').length >= 2, 5000, 'reconnect attempts while the gateway is down');
  gw = await startGateway(binary, GATEWAY_ENV, { port });
  await gw.publish({ channel: 'boot', data: { i: 'after restart' } });
  await waitFor(() => c.seen('resume_failed').length === 1, 5000, 'resume_failed');
  assert(c.session !== oldSession, 'a new session');
  // The re-subscribe asks for a snapshot, so the value published before it shows up at once.
  await waitFor(() => c.got.length >= 4, 5000, 'the snapshot on the new session');
  const last = c.got[3];
  assert(last.seq === 1 && last.data.i === 'after restart', JSON.stringify(last));
  assert(c.seen('disconnected')[0].detail.code === 1001, JSON.stringify(c.seen('disconnected')[0]));
  c.close();
});

await runner.check('a connection that stops answering heartbeats is declared dead', async () => {
  // A fake gateway: welcomes with a 200 ms heartbeat and then never answers anything.
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((r) => wss.once('listening', r));
  let connections = 0;
  wss.on('connection', (sock) => {
    connections += 1;
    sock.send(JSON.stringify({ type: 'welcome', ts: Date.now(), data: { session: `s${connections}`, heartbeat_ms: 200, replay_size: 10, resume_ttl_ms: 0 } }));
  });
  const c = client({}, `ws://127.0.0.1:${wss.address().port}/ws`);
  try {
    await c.connect();
    await waitFor(() => connections >= 2, 3000, 'a reconnect after missing pongs');
    // The new socket is accepted before its welcome reaches the client: wait for that too.
    await waitFor(() => c.seen('welcome').length >= 2, 3000, 'the second welcome');
    const d = c.seen('disconnected')[0]?.detail;
    assert(d && d.reason === 'no pong', JSON.stringify(d));
    assert(c.seen('resumed').length === 0 && c.session === 's2', `session ${c.session}`);
  } finally {
    c.close();
    for (const sock of wss.clients) sock.terminate();
    await new Promise((r) => wss.close(r));
  }
});

// ---- latest-value subscriptions (the real gateway) --------------------------------------------

// Publishes on `channel` at about `perSecond` for `ms` (batches catching up with the clock, so a
// late timer does not lower the rate), numbering data.i from `from`; resolves with the count.
async function publishAtRate(channel, perSecond, ms, from = 0) {
  const start = Date.now();
  const total = Math.round((perSecond * ms) / 1000);
  let sent = 0;
  while (sent < total) {
    const due = Math.min(total, Math.floor(((Date.now() - start) * perSecond) / 1000) + 1);
    if (due > sent) {
      await gw.publish(Array.from({ length: due - sent }, (_, k) => ({ channel, type: 'tick', data: { i: from + sent + k } })));
      sent = due;
    }
    await sleep(10);
  }
  return sent;
}

// What a latest subscription must always hold: seq contiguous from 1, values in publishing
// order, no gap, every `conflated` a number, and received + conflated == published.
function checkLatest(c, channel, published) {
  const mine = c.got.filter((m) => m.channel === channel);
  assert(seqs(c) === range(1, c.got.length), `seqs ${seqs(c)}`);
  assert(mine.every((m, k) => k === 0 || m.data.i > mine[k - 1].data.i), `values out of order: ${mine.map((m) => m.data.i)}`);
  assert(mine.every((m) => Number.isInteger(m.conflated) && m.conflated >= 0), 'conflated is a number on every message');
  assert(c.seen('gap').length === 0 && c.stats.gaps === 0 && c.stats.lostMessages === 0, `gaps ${JSON.stringify(c.stats)}`);
  const skipped = mine.reduce((n, m) => n + m.conflated, 0);
  assert(c.conflatedTotal(channel) === skipped, `conflatedTotal ${c.conflatedTotal(channel)} != sum ${skipped}`);
  assert(skipped + mine.length === published, `received ${mine.length} + conflated ${skipped} != published ${published}`);
  assert(mine.at(-1).data.i === published - 1, `last value ${mine.at(-1).data.i}, last published ${published - 1}`);
  return { received: mine.length, skipped };
}

await runner.check('maxHz 4 on a channel published at ~100/s: about 4/s, seq contiguous, nothing unaccounted', async () => {
  const c = client();
  await c.connect();
  await c.subscribe('hz', { snapshot: false, maxHz: 4 });
  const sub = c.seen('subscribed')[0]?.detail;
  assert(sub && sub.delivery === 'latest' && sub.maxHz === 4, `subscribed ${JSON.stringify(sub)}`);
  assert(JSON.stringify(c.channelOptions('hz')) === '{"delivery":"latest","maxHz":4}', JSON.stringify(c.channelOptions('hz')));
  const start = Date.now();
  const published = await publishAtRate('hz', 100, 3000);
  const seconds = (Date.now() - start) / 1000;
  const during = c.got.length;
  await sleep(600); // the next slot (250 ms) brings the newest held message
  const rate = during / seconds;
  console.log(`  (${published} published in ${seconds.toFixed(2)} s, ${during} received meanwhile: ${rate.toFixed(2)}/s; ${c.got.length} after settling)`);
  assert(rate >= 3 && rate <= 5.5, `rate ${rate.toFixed(2)}/s`);
  const { skipped } = checkLatest(c, 'hz', published);
  assert(skipped > 0 && c.stats.conflated === skipped, `conflated ${skipped}, stats ${c.stats.conflated}`);
  c.close();
});

await runner.check('maxHz survives a reconnect: after the resume the rate stays capped, with no new subscribe', async () => {
  const c = client();
  await c.connect();
  await c.subscribe('hzres', { snapshot: false, maxHz: 4 });
  let published = await publishAtRate('hzres', 100, 1000);
  const session = c.session;
  c.socket()._socket.destroy(); // a network failure, as in the resume checks above
  published += await publishAtRate('hzres', 100, 500, published); // while away
  await waitFor(() => c.seen('resumed').length === 1, 5000, 'resumed');
  assert(c.session === session, 'the same session');
  const resumedAt = Date.now();
  const before = c.got.length;
  published += await publishAtRate('hzres', 100, 2500, published);
  const seconds = (Date.now() - resumedAt) / 1000;
  const after = c.got.length - before;
  await sleep(600);
  const rate = after / seconds;
  console.log(`  (after the resume: ${after} in ${seconds.toFixed(2)} s = ${rate.toFixed(2)}/s; ${published} published in all)`);
  assert(rate >= 3 && rate <= 5.5, `rate after resume ${rate.toFixed(2)}/s`);
  // The gateway kept the options itself: the client had nothing to subscribe again.
  assert(c.seen('subscribed').length === 1, `subscribed events: ${JSON.stringify(c.seen('subscribed'))}`);
  checkLatest(c, 'hzres', published);
  c.close();
});

await runner.check('resume_failed: each group of channels is subscribed again with its options', async () => {
  const c = client();
  c.subscribe('grp.capped', { maxHz: 4, snapshot: false });
  c.subscribe('grp.all', { snapshot: false });
  // As if this client had a session the gateway has never heard of.
  c._session = '0123456789abcd01';
  c._seq.lastSeq = 5;
  c._disconnectedAt = Date.now();
  await c.connect();
  assert(c.seen('resume_failed').length === 1, 'resume_failed');
  await waitFor(() => c.seen('subscribed').length === 2, 3000, 'two subscribes');
  const subs = c.seen('subscribed').map((e) => e.detail);
  const capped = subs.find((d) => d.channels.join() === 'grp.capped');
  const plain = subs.find((d) => d.channels.join() === 'grp.all');
  assert(capped && capped.maxHz === 4 && plain && plain.delivery === undefined, JSON.stringify(subs));
  const [a, b] = await Promise.all([publishAtRate('grp.capped', 100, 2000), publishAtRate('grp.all', 20, 2000)]);
  await sleep(600);
  const got = (ch) => c.got.filter((m) => m.channel === ch);
  assert(got('grp.all').length === b && got('grp.all').every((m) => m.conflated === 0), `all: ${got('grp.all').length} of ${b}`);
  assert(got('grp.capped').length <= 13 && c.conflatedTotal('grp.capped') + got('grp.capped').length === a,
    `capped: ${got('grp.capped').length} + ${c.conflatedTotal('grp.capped')} of ${a}`);
  assert(seqs(c) === range(1, c.got.length) && c.stats.gaps === 0, seqs(c));
  c.close();
});

await runner.check('bad options are refused by the client; switching back to all delivers everything', async () => {
  const c = client();
  await c.connect();
  let error = null;
  await c.subscribe('sw', { delivery: 'all', maxHz: 4 }).catch((e) => { error = e; });
  assert(error && error.code === 'bad_request' && !c.isSubscribed('sw'), `all + maxHz: ${error}`);
  error = null;
  await c.subscribe('sw', { maxHz: 5000 }).catch((e) => { error = e; });
  assert(error && error.code === 'bad_request', `maxHz 5000: ${error}`);
  await c.subscribe('sw', { snapshot: false, maxHz: 2 });
  const capped = await publishAtRate('sw', 100, 1000);
  await sleep(700);
  const n = c.got.length;
  assert(n <= 5 && c.conflatedTotal('sw') + n === capped, `capped: ${n} + ${c.conflatedTotal('sw')} of ${capped}`);
  await c.subscribe('sw', { snapshot: false, delivery: 'all' });
  assert(c.channelOptions('sw').delivery === 'all', JSON.stringify(c.channelOptions('sw')));
  const all = await publishAtRate('sw', 100, 1000, capped);
  await waitFor(() => c.got.length >= n + all, 3000, `all ${all} after switching to all`);
  assert(c.got.slice(n).every((m) => m.conflated === 0), 'nothing skipped with all');
  assert(seqs(c) === range(1, c.got.length) && c.stats.gaps === 0, seqs(c));
  c.close();
});

// ---- positions and resume on another instance (a scripted gateway) --------------------------
// The embedded gateway has no stream positions, so these checks script the JetStream-mode side
// of docs/protocol.md by hand: every connection to the fake is "another instance" (welcome
// session s1, s2, ...), and `onRequest(conn, msg)` answers what the client sends.
async function fakeGateway(onRequest) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((r) => wss.once('listening', r));
  const conns = [];
  wss.on('connection', (sock) => {
    const conn = {
      n: conns.length + 1,
      sock,
      requests: [], // every request but heartbeats
      send: (o) => sock.send(JSON.stringify(o)),
      data: (seq, pos, channel, data) => conn.send({ seq, ...(pos === undefined ? {} : { pos }), ts: Date.now(), type: 'test', channel, data }),
    };
    conns.push(conn);
    sock.on('message', async (raw) => {
      const msg = JSON.parse(String(raw));
      if (msg.type === 'heartbeat') return conn.send({ type: 'pong', id: msg.id });
      conn.requests.push(msg);
      try {
        await onRequest(conn, msg);
      } catch (e) {
        conn.failure = e; // surfaced by the check that waits on this connection
      }
    });
    conn.send({ type: 'welcome', ts: Date.now(), data: { session: `s${conn.n}`, heartbeat_ms: 30000, replay_size: 100, resume_ttl_ms: 30000 } });
  });
  return {
    url: `ws://127.0.0.1:${wss.address().port}/ws`,
    conns,
    async close() {
      for (const sock of wss.clients) sock.terminate();
      await new Promise((r) => wss.close(r));
    },
  };
}

const resumeOf = (conn) => conn.requests.find((m) => m.type === 'resume')?.data;
const datas = (c) => c.got.map((m) => m.data).join(',');

await runner.check('fake JetStream gateways: the session restored elsewhere, new id adopted, seq goes on', async () => {
  const fake = await fakeGateway((conn, msg) => {
    if (conn.n === 1 && msg.type === 'subscribe') {
      conn.send({ type: 'subscribed', id: msg.id, data: { channels: msg.data.channels, pos: 100 } });
      conn.data(1, 101, 'X', 'a');
      conn.data(2, 102, 'X', 'b');
      conn.data(3, 104, 'X', 'c'); // 103 belongs to a channel this client does not hold
    }
    if (conn.n === 2 && msg.type === 'resume') {
      conn.data(4, 105, 'X', 'd'); // re-sent from the stream: pos > last_pos, seq from last_seq + 1
      conn.data(5, 107, 'X', 'e');
      conn.send({ type: 'resumed', id: msg.id, data: { session: 's2', replayed: 2, restored: true, pos: 107 } });
      conn.data(6, 108, 'X', 'f'); // live
    }
    if (conn.n === 3 && msg.type === 'resume') {
      // The instance that ran s2: a v1 resume (nothing missed), its position.
      conn.send({ type: 'resumed', id: msg.id, data: { session: 's2', replayed: 0, pos: 110 } });
    }
  });
  const c = client({}, fake.url);
  try {
    await c.connect();
    assert(c.position === null, `position before any subscribe: ${c.position}`);
    await c.subscribe('X', { snapshot: false });
    await waitFor(() => c.got.length >= 3, 3000, '3 messages');
    assert(c.position === 104, `position ${c.position}`);
    fake.conns[0].sock.terminate(); // the instance dies
    await waitFor(() => c.got.length >= 6, 5000, 'the re-sent and live messages');
    const sent = resumeOf(fake.conns[1]);
    assert(JSON.stringify(sent) === '{"session":"s1","last_seq":3,"last_pos":104,"channels":["X"]}', JSON.stringify(sent));
    const resumed = c.seen('resumed')[0].detail;
    assert(resumed.session === 's2' && resumed.previousSession === 's1' && resumed.restored === true &&
      resumed.replayed === 2 && resumed.pos === 107, JSON.stringify(resumed));
    assert(c.session === 's2' && c.position === 108, `session ${c.session} position ${c.position}`);
    assert(seqs(c) === range(1, 6) && datas(c) === 'a,b,c,d,e,f', `${seqs(c)} / ${datas(c)}`);
    // The restored session already holds X: no subscribe on the new connection.
    assert(fake.conns[1].requests.map((m) => m.type).join() === 'resume', JSON.stringify(fake.conns[1].requests));
    assert(c.stats.duplicates === 0 && c.stats.gaps === 0 && c.stats.resumeFailures === 0, JSON.stringify(c.stats));
    // Next reconnect: the new id and numbering; an instance that knows s2 answers without `restored`.
    fake.conns[1].sock.terminate();
    await waitFor(() => c.seen('resumed').length === 2, 5000, 'the second resume');
    const again = resumeOf(fake.conns[2]);
    assert(again.session === 's2' && again.last_seq === 6 && again.last_pos === 108, JSON.stringify(again));
    const second = c.seen('resumed')[1].detail;
    assert(second.restored === false && c.session === 's2' && c.position === 110, `${JSON.stringify(second)} ${c.position}`);
    for (const conn of fake.conns) assert(!conn.failure, conn.failure);
  } finally {
    c.close();
    await fake.close();
  }
});

await runner.check('fake JetStream gateways: a hole holds the position back; the old buffer is not mixed in', async () => {
  let replayAsked = false;
  const fake = await fakeGateway((conn, msg) => {
    if (conn.n === 1 && msg.type === 'subscribe' && msg.data.channels[0] === 'X') {
      conn.send({ type: 'subscribed', id: msg.id, data: { channels: ['X'], pos: 100 } });
      conn.data(1, 101, 'X', 'a');
      conn.data(2, 102, 'X', 'b'); // dropped on the way to the client (`drop`)
      conn.data(3, 103, 'X', 'c');
    }
    if (conn.n === 1 && msg.type === 'subscribe' && msg.data.channels[0] === 'Y') {
      conn.send({ type: 'subscribed', id: msg.id, data: { channels: ['Y'], pos: 105 } });
    }
    if (conn.n === 1 && msg.type === 'replay') replayAsked = true; // never answered: the instance dies
    if (conn.n === 2 && msg.type === 'resume') {
      conn.data(2, 102, 'X', 'b');
      conn.data(3, 103, 'X', 'c2'); // this instance's copy; the client's buffered seq 3 must not win
      conn.send({ type: 'resumed', id: msg.id, data: { session: 's2', replayed: 2, restored: true, pos: 105 } });
    }
  });
  const c = client({ drop: 2 }, fake.url);
  try {
    await c.connect();
    await c.subscribe('X', { snapshot: false });
    await waitFor(() => replayAsked, 3000, 'the replay request for seq 2');
    await c.subscribe('Y', { snapshot: false });
    // Seq 3 waits in the buffer; Y's reply position covers seq 2 and 3, which are not delivered.
    assert(c.lastSeq === 1 && c.stats.buffered === 1 && c.position === 101, `lastSeq ${c.lastSeq} buffered ${c.stats.buffered} position ${c.position}`);
    fake.conns[0].sock.terminate();
    await waitFor(() => c.seen('resumed').length === 1, 5000, 'resumed');
    const sent = resumeOf(fake.conns[1]);
    assert(JSON.stringify(sent) === '{"session":"s1","last_seq":1,"last_pos":101,"channels":["X","Y"]}', JSON.stringify(sent));
    assert(seqs(c) === '1,2,3' && datas(c) === 'a,b,c2', `${seqs(c)} / ${datas(c)}`);
    assert(c.position === 105 && c.stats.buffered === 0 && c.stats.lostMessages === 0, `position ${c.position} ${JSON.stringify(c.stats)}`);
    for (const conn of fake.conns) assert(!conn.failure, conn.failure);
  } finally {
    c.close();
    await fake.close();
  }
});

await runner.check('fake JetStream gateways: resume_failed starts afresh with snapshots; position from the new reply', async () => {
  const fake = await fakeGateway((conn, msg) => {
    if (conn.n === 1 && msg.type === 'subscribe') {
      conn.send({ type: 'subscribed', id: msg.id, data: { channels: msg.data.channels, pos: 100 } });
      conn.data(1, 101, 'X', 'a');
    }
    if (conn.n === 2 && msg.type === 'resume') {
      conn.send({ type: 'error', id: msg.id, data: { code: 'resume_failed', message: 'the stream no longer holds it' } });
    }
    if (conn.n === 2 && msg.type === 'subscribe') {
      conn.send({ type: 'subscribed', id: msg.id, data: { channels: msg.data.channels, pos: 120 } });
      conn.data(1, 118, 'X', 'snap'); // a snapshot: an older position
    }
  });
  const c = client({}, fake.url);
  try {
    await c.connect();
    await c.subscribe('X', { snapshot: false });
    await waitFor(() => c.got.length >= 1, 3000, 'a message');
    fake.conns[0].sock.terminate();
    await waitFor(() => c.got.length >= 2, 5000, 'the snapshot on the fresh session');
    assert(resumeOf(fake.conns[1]).last_pos === 101, JSON.stringify(resumeOf(fake.conns[1])));
    const sub = fake.conns[1].requests.find((m) => m.type === 'subscribe');
    assert(sub && sub.data.snapshot === true && sub.data.channels.join() === 'X', JSON.stringify(sub));
    const failed = c.seen('resume_failed')[0]?.detail;
    assert(failed && failed.session === 's1' && failed.newSession === 's2' && c.session === 's2', JSON.stringify(failed));
    assert(c.lastSeq === 1 && c.got[1].data === 'snap' && c.position === 120, `lastSeq ${c.lastSeq} position ${c.position}`);
  } finally {
    c.close();
    await fake.close();
  }
});

await runner.check('fake JetStream gateways: a restoring resume carries the latest options; offline changes are sent after resume', async () => {
  const fake = await fakeGateway((conn, msg) => {
    if (msg.type === 'subscribe') {
      const { channels, delivery, max_hz: maxHz } = msg.data;
      conn.send({ type: 'subscribed', id: msg.id, data: { channels, pos: 100, ...(delivery ? { delivery } : {}), ...(maxHz ? { max_hz: maxHz } : {}) } });
    }
    if (conn.n === 1 && msg.type === 'subscribe' && msg.data.channels[0] === 'A') {
      conn.data(1, 101, 'A', 'a1');
      conn.send({ seq: 2, pos: 130, conflated: 28, ts: Date.now(), type: 'test', channel: 'A', data: 'a2' });
    }
    if (conn.n === 2 && msg.type === 'resume') {
      conn.send({ type: 'resumed', id: msg.id, data: { session: 's2', replayed: 0, restored: true, pos: 140 } });
    }
    if (conn.n === 3 && msg.type === 'resume') {
      conn.send({ type: 'resumed', id: msg.id, data: { session: 's2', replayed: 0, pos: 150 } });
    }
  });
  const c = client({}, fake.url);
  try {
    await c.connect();
    await c.subscribe('A', { snapshot: false, maxHz: 4 });
    await c.subscribe('B', { snapshot: false });
    await c.subscribe('C', { snapshot: false, delivery: 'latest' });
    const subs = fake.conns[0].requests.filter((m) => m.type === 'subscribe').map((m) => JSON.stringify(m.data));
    assert(subs.join(' ') === '{"channels":["A"],"snapshot":false,"max_hz":4} {"channels":["B"],"snapshot":false} ' +
      '{"channels":["C"],"snapshot":false,"delivery":"latest"}', subs.join(' '));
    await waitFor(() => c.got.length >= 2, 3000, '2 messages');
    assert(c.got[0].conflated === 0 && c.got[1].conflated === 28 && c.conflatedTotal('A') === 28, JSON.stringify(c.got));
    fake.conns[0].sock.terminate();
    await waitFor(() => c.seen('resumed').length === 1, 5000, 'the restore');
    const sent = resumeOf(fake.conns[1]);
    assert(JSON.stringify(sent.options) === '{"A":{"delivery":"latest","max_hz":4},"C":{"delivery":"latest"}}' &&
      sent.channels.join() === 'A,B,C', JSON.stringify(sent));
    assert(c.seen('resumed')[0].detail.restored === true, 'restored');
    await sleep(100);
    assert(fake.conns[1].requests.map((m) => m.type).join() === 'resume', `after the restore: ${JSON.stringify(fake.conns[1].requests)}`);
    // Changed while disconnected; the next instance knows the session and keeps its own options.
    const off = c.on('disconnected', () => {
      off();
      c.subscribe('B', { maxHz: 10 });
      c.subscribe('A', { delivery: 'all' });
    });
    fake.conns[1].sock.terminate();
    await waitFor(() => c.seen('resumed').length === 2, 5000, 'the second resume');
    await waitFor(() => fake.conns[2].requests.filter((m) => m.type === 'subscribe').length === 2, 3000, 'the option changes');
    const changes = fake.conns[2].requests.filter((m) => m.type === 'subscribe').map((m) => JSON.stringify(m.data)).sort();
    assert(changes.join(' ') === '{"channels":["A"],"snapshot":false,"delivery":"all"} {"channels":["B"],"snapshot":false,"max_hz":10}',
      changes.join(' '));
    assert(JSON.stringify(resumeOf(fake.conns[2]).options) === '{"B":{"delivery":"latest","max_hz":10},"C":{"delivery":"latest"}}',
      JSON.stringify(resumeOf(fake.conns[2])));
    for (const conn of fake.conns) assert(!conn.failure, conn.failure);
  } finally {
    c.close();
    await fake.close();
  }
});

await runner.check('fake v1 gateway (no pos): the resume request stays v1', async () => {
  const fake = await fakeGateway((conn, msg) => {
    if (conn.n === 1 && msg.type === 'subscribe') {
      conn.send({ type: 'subscribed', id: msg.id, data: { channels: msg.data.channels } });
      conn.data(1, undefined, 'X', 'a');
    }
    if (conn.n === 2 && msg.type === 'resume') {
      conn.send({ type: 'resumed', id: msg.id, data: { session: 's1', replayed: 0 } });
    }
  });
  const c = client({}, fake.url);
  try {
    await c.connect();
    await c.subscribe('X', { snapshot: false });
    await waitFor(() => c.got.length >= 1, 3000, 'a message');
    fake.conns[0].sock.terminate();
    await waitFor(() => c.seen('resumed').length === 1, 5000, 'resumed');
    assert(JSON.stringify(resumeOf(fake.conns[1])) === '{"session":"s1","last_seq":1}', JSON.stringify(resumeOf(fake.conns[1])));
    const resumed = c.seen('resumed')[0].detail;
    assert(resumed.restored === false && resumed.pos === null && c.session === 's1' && c.position === null, JSON.stringify(resumed));
  } finally {
    c.close();
    await fake.close();
  }
});

await runner.check('fake v1 gateway: close() with a replay outstanding, connect() again: later gaps are replayed', async () => {
  const fake = await fakeGateway((conn, msg) => {
    if (conn.n === 1 && msg.type === 'subscribe') {
      conn.send({ type: 'subscribed', id: msg.id, data: { channels: msg.data.channels } });
      conn.data(1, undefined, 'X', 'a');
      conn.data(3, undefined, 'X', 'c'); // seq 2 missing: a replay that is never answered
    }
    if (conn.n === 2 && msg.type === 'resume') {
      conn.data(2, undefined, 'X', 'b'); // everything after last_seq, as a gateway re-sends it
      conn.data(3, undefined, 'X', 'c');
      conn.send({ type: 'resumed', id: msg.id, data: { session: 's1', replayed: 2 } });
      conn.data(5, undefined, 'X', 'e'); // live, seq 4 missing
    }
    if (conn.n === 2 && msg.type === 'replay') {
      conn.data(4, undefined, 'X', 'd');
      conn.send({ type: 'replay_done', id: msg.id, data: { from: 4, to: 4, sent: 1, first_available: 1 } });
    }
  });
  const c = client({}, fake.url);
  try {
    await c.connect();
    await c.subscribe('X', { snapshot: false });
    await waitFor(() => fake.conns[0].requests.some((m) => m.type === 'replay'), 3000, 'the replay request');
    c.close();
    await c.connect();
    await waitFor(() => c.got.length >= 5, 3000, 'seq 4 replayed on the new connection');
    assert(seqs(c) === range(1, 5) && datas(c) === 'a,b,c,d,e', `${seqs(c)} / ${datas(c)}`);
    const replays = fake.conns[1].requests.filter((m) => m.type === 'replay').map((m) => `${m.data.from}-${m.data.to}`);
    assert(replays.join() === '4-4', `replays on the new connection: ${replays}`);
  } finally {
    c.close();
    await fake.close();
  }
});

for (const c of clients) c.close();
const code = await gw.stop();
if (code !== 0) {
  console.log(`FAIL client: gateway exited with ${code}\n${gw.output()}`);
  runner.finish(1);
}
runner.finish();
