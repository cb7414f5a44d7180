'use strict';
// Benchmark peer: the WebSocket fan-out gateway a competent team would write in Node.js with
// `ws` and `nats`, speaking the odin-ws wire protocol (docs: /tools/bench/peers/README.md) for
// the parts the benchmarks use. Single process, single thread.
//
// NATS subject `<WS_SUBJECT_PREFIX><channel>` -> every WebSocket subscribed to <channel>, as
//   {"seq":N,"ts":T,"type":"...","channel":"...","data":<payload>}
// The part after `"seq":N,` is built once per message and shared by all recipients.
//
// Environment: PORT (3012), HOST (127.0.0.1), NATS_URL (nats://127.0.0.1:4222),
// WS_SUBJECT_PREFIX (odin.token.), WS_SLOW_CONSUMER_BYTES (1048576; falls back to
// WS_CLIENT_QUEUE_BYTES), WS_MAX_CONNECTIONS (0 = no cap), WS_MAX_MESSAGE_BYTES (4096),
// WS_MAX_CHANNELS_PER_CONN (100), WS_PING_INTERVAL (30s), WS_HEARTBEAT_TIMEOUT (90s).

const http = require('http');
const crypto = require('crypto');
const { WebSocketServer } = require('ws');
const { connect, Match } = require('nats');

function intEnv(name, fallback) {
  const v = process.env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name} must be a non-negative number, got ${v}`);
  return Math.floor(n);
}

// "250ms", "30s", "2m", or a bare number of seconds -> milliseconds.
function durationEnv(name, fallbackMs) {
  const v = process.env[name];
  if (v === undefined || v === '') return fallbackMs;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(v.trim());
  if (!m) throw new Error(`${name} must be a duration like 250ms, 30s, 2m; got ${v}`);
  const scale = m[2] === 'ms' ? 1 : m[2] === 'm' ? 60000 : 1000;
  return Math.round(Number(m[1]) * scale);
}

const PORT = intEnv('PORT', 3012);
const HOST = process.env.HOST || '127.0.0.1';
const NATS_URL = process.env.NATS_URL || 'nats://127.0.0.1:4222';
const PREFIX = process.env.WS_SUBJECT_PREFIX || 'odin.token.';
const SLOW_CONSUMER_BYTES = intEnv('WS_SLOW_CONSUMER_BYTES', intEnv('WS_CLIENT_QUEUE_BYTES', 1 << 20));
const MAX_CONNECTIONS = intEnv('WS_MAX_CONNECTIONS', 0);
const MAX_MESSAGE_BYTES = intEnv('WS_MAX_MESSAGE_BYTES', 4096);
const MAX_CHANNELS_PER_CONN = intEnv('WS_MAX_CHANNELS_PER_CONN', 100);
const PING_INTERVAL_MS = durationEnv('WS_PING_INTERVAL', 30000);
const HEARTBEAT_TIMEOUT_MS = durationEnv('WS_HEARTBEAT_TIMEOUT', 90000);

const CHANNEL_RE = /^[A-Za-z0-9_.:-]{1,128}$/;

// channel -> Set<Client>
const channels = new Map();
const clients = new Set();
const stats = { messagesIn: 0, messagesOut: 0, slowClientDisconnects: 0, connectionsTotal: 0 };
const startedAt = Date.now();

class Client {
  constructor(ws) {
    this.ws = ws;
    this.session = crypto.randomBytes(12).toString('hex');
    this.seq = 0;
    this.channels = new Set();
    this.lastSeen = Date.now();
    this.closing = false;
  }
}

function subscribe(client, channel) {
  if (client.channels.has(channel)) return;
  client.channels.add(channel);
  let set = channels.get(channel);
  if (!set) channels.set(channel, (set = new Set()));
  set.add(client);
}

function unsubscribe(client, channel) {
  if (!client.channels.delete(channel)) return;
  const set = channels.get(channel);
  if (!set) return;
  set.delete(client);
  if (set.size === 0) channels.delete(channel);
}

function detach(client) {
  for (const channel of client.channels) {
    const set = channels.get(channel);
    if (set) {
      set.delete(client);
      if (set.size === 0) channels.delete(channel);
    }
  }
  client.channels.clear();
  clients.delete(client);
}

// Closes a client with `code` and stops sending to it at once; if the closing handshake cannot
// complete (its socket is backed up), the socket is destroyed after 2 s.
function shut(client, code, reason) {
  if (client.closing) return;
  client.closing = true;
  detach(client);
  client.ws.close(code, reason);
  setTimeout(() => client.ws.terminate(), 2000).unref();
}

// ---- fan-out ---------------------------------------------------------------------------------

function onNatsMessage(err, msg) {
  if (err) {
    console.error(`nats subscription error: ${err.message}`);
    return;
  }
  stats.messagesIn++;
  const channel = msg.subject.slice(PREFIX.length);
  const subscribers = channels.get(channel);
  if (!subscribers) return;
  const raw = Buffer.from(msg.data.buffer, msg.data.byteOffset, msg.data.byteLength).toString('utf8');
  let data = raw;
  try {
    JSON.parse(raw);
  } catch {
    data = JSON.stringify(raw);
  }
  const type = (msg.headers && msg.headers.get('Type', Match.IgnoreCase)) || 'message';
  const tail = `"ts":${Date.now()},"type":${JSON.stringify(type)},"channel":${JSON.stringify(channel)},"data":${data}}`;
  for (const client of subscribers) {
    if (client.ws.bufferedAmount > SLOW_CONSUMER_BYTES) {
      stats.slowClientDisconnects++;
      shut(client, 4008, 'slow consumer'); // removes it from `subscribers`; safe while iterating a Set
      continue;
    }
    client.ws.send('{"seq":' + (++client.seq) + ',' + tail);
    stats.messagesOut++;
  }
}

// ---- client requests ---------------------------------------------------------------------------

function reply(client, body, id) {
  if (id !== undefined) body.id = id;
  client.ws.send(JSON.stringify(body));
}

function sendError(client, code, message, id) {
  reply(client, { type: 'error', data: { code, message } }, id);
}

// data.channels (or data.symbols) -> unique names in order, or a string describing the problem.
function readChannels(data) {
  if (data === null || typeof data !== 'object' || Array.isArray(data)) return 'data must be an object';
  const list = Array.isArray(data.channels) ? data.channels : data.symbols;
  if (!Array.isArray(list) || list.length === 0) return 'data.channels must be a non-empty array of channel names';
  const out = [];
  for (const name of list) {
    if (typeof name !== 'string' || !CHANNEL_RE.test(name)) return 'invalid channel name (1-128 of A-Z a-z 0-9 _ - . :)';
    if (!out.includes(name)) out.push(name);
  }
  return out;
}

function onClientMessage(client, raw, isBinary) {
  client.lastSeen = Date.now();
  if (isBinary) {
    shut(client, 1003, 'binary frames are not accepted');
    return;
  }
  let req;
  try {
    req = JSON.parse(raw.toString('utf8'));
  } catch {
    sendError(client, 'bad_request', 'request is not JSON');
    return;
  }
  if (req === null || typeof req !== 'object' || Array.isArray(req)) {
    sendError(client, 'bad_request', 'request must be a JSON object');
    return;
  }
  const id = req.id;
  switch (req.type) {
    case 'subscribe':
    case 'unsubscribe': {
      const list = readChannels(req.data);
      if (typeof list === 'string') {
        sendError(client, 'bad_request', list, id);
        return;
      }
      if (req.type === 'unsubscribe') {
        for (const ch of list) unsubscribe(client, ch);
        reply(client, { type: 'unsubscribed', data: { channels: list } }, id);
        return;
      }
      const added = list.filter((ch) => !client.channels.has(ch)).length;
      if (client.channels.size + added > MAX_CHANNELS_PER_CONN) {
        sendError(client, 'too_many_channels', `at most ${MAX_CHANNELS_PER_CONN} channels per connection`, id);
        return;
      }
      for (const ch of list) subscribe(client, ch);
      reply(client, { type: 'subscribed', data: { channels: list } }, id);
      return; // "snapshot" is accepted and ignored: this peer keeps no latest values
    }
    case 'heartbeat':
      reply(client, { type: 'pong', ts: Date.now() }, id);
      return;
    case 'replay': {
      // No replay ring (welcome says replay_size 0): nothing is ever available.
      const d = req.data;
      const from = d && d.from;
      if (!Number.isSafeInteger(from) || from < 1) {
        sendError(client, 'bad_request', 'replay needs data.from, a seq >= 1', id);
        return;
      }
      const to = Number.isSafeInteger(d.to) ? d.to : client.seq;
      reply(client, { type: 'replay_done', data: { from, to, sent: 0, first_available: client.seq + 1 } }, id);
      return;
    }
    case 'resume':
      // No sessions are kept (welcome says resume_ttl_ms 0); the connection goes on as a fresh session.
      sendError(client, 'resume_failed', 'this gateway does not keep sessions', id);
      return;
    default:
      sendError(client, 'unknown_type', `unknown request type ${JSON.stringify(String(req.type))}`, id);
  }
}

// ---- HTTP + upgrade ----------------------------------------------------------------------------

function sendJson(res, status, body, headers = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function refuseUpgrade(socket, status, reason, error, extra = '') {
  const body = JSON.stringify({ error });
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
      `Connection: close\r\n${extra}\r\n${body}`,
  );
}

let nc = null;

const server = http.createServer((req, res) => {
  const path = req.url.split('?', 1)[0];
  if (req.method === 'GET' && path === '/health') {
    const connected = nc !== null && !nc.isClosed();
    sendJson(res, connected ? 200 : 503, { status: connected ? 'healthy' : 'unhealthy' });
  } else if (req.method === 'GET' && path === '/stats') {
    sendJson(res, 200, {
      currentConnections: clients.size,
      connectionsTotal: stats.connectionsTotal,
      channels: channels.size,
      messagesIn: stats.messagesIn,
      messagesOut: stats.messagesOut,
      slowClientDisconnects: stats.slowClientDisconnects,
      memoryMB: Math.round(process.memoryUsage().rss / 1048576),
      uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
    });
  } else if (path === '/ws') {
    sendJson(res, 400, { error: 'not a WebSocket upgrade request' });
  } else {
    sendJson(res, 404, { error: 'not found' });
  }
});

const wss = new WebSocketServer({
  noServer: true,
  perMessageDeflate: false,
  maxPayload: MAX_MESSAGE_BYTES, // larger client frames: close 1009
  clientTracking: false,
});

server.on('upgrade', (req, socket, head) => {
  socket.on('error', () => {});
  const url = new URL(req.url, 'http://localhost');
  if (url.pathname !== '/ws') {
    refuseUpgrade(socket, 404, 'Not Found', 'not found');
    return;
  }
  const wanted = [];
  for (const name of (url.searchParams.get('channels') || '').split(',')) {
    if (name === '') continue;
    if (!CHANNEL_RE.test(name)) {
      refuseUpgrade(socket, 400, 'Bad Request', 'invalid channel name in ?channels=');
      return;
    }
    if (!wanted.includes(name)) wanted.push(name);
  }
  if (wanted.length > MAX_CHANNELS_PER_CONN) {
    refuseUpgrade(socket, 400, 'Bad Request', 'too many channels in ?channels=');
    return;
  }
  if (MAX_CONNECTIONS > 0 && clients.size >= MAX_CONNECTIONS) {
    refuseUpgrade(socket, 503, 'Service Unavailable', 'too many connections', 'Retry-After: 5\r\n');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws, wanted));
});

function onConnection(ws, wanted) {
  const client = new Client(ws);
  clients.add(client);
  stats.connectionsTotal++;
  ws.send(
    JSON.stringify({
      type: 'welcome',
      ts: Date.now(),
      data: { session: client.session, heartbeat_ms: PING_INTERVAL_MS, replay_size: 0, resume_ttl_ms: 0 },
    }),
  );
  if (wanted.length > 0) {
    for (const ch of wanted) subscribe(client, ch);
    ws.send(JSON.stringify({ type: 'subscribed', data: { channels: wanted } }));
  }
  ws.on('message', (data, isBinary) => onClientMessage(client, data, isBinary));
  ws.on('pong', () => {
    client.lastSeen = Date.now();
  });
  ws.on('ping', () => {
    client.lastSeen = Date.now(); // ws answers pings itself
  });
  ws.on('close', () => detach(client));
  ws.on('error', () => detach(client));
}

// Pings every client each interval; closes 4000 those silent for longer than the timeout.
const pinger = setInterval(() => {
  const now = Date.now();
  for (const client of clients) {
    if (now - client.lastSeen > HEARTBEAT_TIMEOUT_MS) shut(client, 4000, 'heartbeat timeout');
    else if (!client.closing) client.ws.ping();
  }
}, PING_INTERVAL_MS);
pinger.unref();

// ---- start / stop ------------------------------------------------------------------------------

async function main() {
  nc = await connect({ servers: NATS_URL, name: 'odin-ws-node-peer', maxReconnectAttempts: -1 });
  nc.subscribe(`${PREFIX}>`, { callback: onNatsMessage });
  await nc.flush();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(PORT, HOST, resolve);
  });
  console.log(
    `odin-ws node peer (pid ${process.pid}, node ${process.version}) listening on http://${HOST}:${PORT}, ` +
      `NATS ${NATS_URL} subject ${PREFIX}>, slow consumer limit ${SLOW_CONSUMER_BYTES} bytes`,
  );
}

let stopping = false;
function stop() {
  if (stopping) return;
  stopping = true;
  server.close();
  for (const client of clients) shut(client, 1001, 'server shutting down');
  const done = () => process.exit(0);
  setTimeout(done, 2000); // at most 2 s for the close frames to go out
  (nc ? nc.close() : Promise.resolve()).then(() => setTimeout(done, 200), done);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

main().catch((err) => {
  console.error(`odin-ws node peer failed to start: ${err.message}`);
  process.exit(1);
});
