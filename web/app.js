// The live ticker page (index.html): one OdinClient, a price board of the subscribed channels, a
// channel picker, the client's own counters, the gateway's /stats and an event log. Everything
// the page knows about the connection comes from the client's events, so the page is also a
// living example of the SDK's API: it imports the JavaScript SDK (clients/js, the npm package
// odin-ws-client), which the gateway serves under /sdk/ (WS_SDK_ROOT); the page has no copy of
// it. The channel-name rule is imported from it too, so that it has one copy in JavaScript. The demo feed's symbols (WS_DEMO_FEED, WS_DEMO_SYMBOLS) are
// asked of the gateway at start (GET /demo/channels, in the feed's order): the picker lists them
// and a first visit subscribes to the first POPULAR_COUNT. With the feed off (404) or no answer,
// the picker lists only the visitor's own channels and any typed channel can still be subscribed.
// Each row has a delivery choice (docs/protocol.md, latest-value subscriptions): every message,
// only the latest, or the latest at most 1, 4 or 10 times a second; changing it subscribes again
// with the new options, which the gateway applies at once. The row counts the messages it got and
// the ones the gateway skipped for it (the `conflated` counts). Channels and choices are kept in
// localStorage, so a reload comes back to the same board.
import {
  CHANNEL_NAME_RULE, ClientState, isChannelName, OdinClient,
} from './sdk/odin-client.js';

const POPULAR_COUNT = 8; // a first visit's channels: the first demo symbols
const STORAGE_KEY = 'odin-ws.channels';
const DELIVERY_KEY = 'odin-ws.delivery'; // {channel: choice} for the channels not on "all"
// The delivery choices of a row, as subscribe() options.
const DELIVERY = [
  { value: 'all', label: 'all', options: { delivery: 'all' } },
  { value: 'latest', label: 'latest', options: { delivery: 'latest' } },
  { value: '1', label: '1 Hz', options: { delivery: 'latest', maxHz: 1 } },
  { value: '4', label: '4 Hz', options: { delivery: 'latest', maxHz: 4 } },
  { value: '10', label: '10 Hz', options: { delivery: 'latest', maxHz: 10 } },
];
const deliveryOf = (value) => DELIVERY.find((d) => d.value === value) ?? DELIVERY[0];
const TREND_POINTS = 60; // prices kept per row for the sparkline
const LOG_LINES = 80;
const STATE_LABEL = {
  [ClientState.IDLE]: 'idle',
  [ClientState.CONNECTING]: 'connecting',
  [ClientState.RESUMING]: 'resuming',
  [ClientState.OPEN]: 'live',
  [ClientState.RECONNECTING]: 'reconnecting',
  [ClientState.CLOSED]: 'closed',
};

const $ = (id) => document.getElementById(id);
const rows = new Map(); // channel -> row (see makeRow)
let demoChannels = []; // GET /demo/channels, once it has answered; empty when the feed is off
const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
const client = new OdinClient(url);
window.odin = client; // for the console

const priceFormats = new Map();
const compact = new Intl.NumberFormat('en-US', { notation: 'compact', maximumFractionDigits: 1 });
const integer = new Intl.NumberFormat('en-US');

// ---- small helpers ---------------------------------------------------------------------------

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// Same precision as the demo feed: 5 decimals under 1, 3 under 100, else 2.
function formatPrice(p) {
  const digits = Math.abs(p) < 1 ? 5 : Math.abs(p) < 100 ? 3 : 2;
  let f = priceFormats.get(digits);
  if (!f) {
    f = new Intl.NumberFormat('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
    priceFormats.set(digits, f);
  }
  return f.format(p);
}

function formatAge(ms) {
  if (ms < 1500) return 'now';
  if (ms < 60000) return `${Math.round(ms / 1000)} s ago`;
  if (ms < 3600000) return `${Math.round(ms / 60000)} min ago`;
  return 'long ago';
}

function formatUptime(s) {
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = Math.floor(s % 60);
  if (h) return `${h} h ${m} min`;
  if (m) return `${m} min ${sec} s`;
  return `${sec} s`;
}

function setText(node, text) {
  const value = String(text);
  if (node.textContent !== value) node.textContent = value;
}

// Restarts a CSS animation class: removing and re-adding it in one frame would not.
function replay(node, className, other) {
  node.classList.remove(className, other);
  void node.offsetWidth;
  node.classList.add(className);
}

function log(text, kind = '') {
  const li = el('li', kind);
  li.append(el('time', '', new Date().toLocaleTimeString('en-GB')), el('span', '', text));
  const list = $('log');
  list.prepend(li);
  while (list.children.length > LOG_LINES) list.lastChild.remove();
}

function saveChannels() {
  try {
    localStorage.setItem(STORAGE_KEY, JSON.stringify(client.channels));
    const choices = {};
    for (const c of client.channels) {
      const value = deliveryChoices.get(c);
      if (value && value !== 'all') choices[c] = value;
    }
    localStorage.setItem(DELIVERY_KEY, JSON.stringify(choices));
  } catch {
    // storage disabled (private mode, file://): the page just starts with the defaults next time
  }
}

// channel -> delivery choice (a DELIVERY value); absent: "all", subscribed without options.
const deliveryChoices = new Map(loadChoices());

function loadChoices() {
  try {
    const saved = JSON.parse(localStorage.getItem(DELIVERY_KEY));
    if (saved && typeof saved === 'object') {
      return Object.entries(saved).filter(([c, v]) => isChannelName(c) && DELIVERY.some((d) => d.value === v));
    }
  } catch {
    // nothing saved, or not readable
  }
  return [];
}

// ?channels=A,B in the page URL, else what the visitor had last time; null on a first visit,
// which takes the first demo symbols once the gateway has listed them.
function initialChannels() {
  const param = new URLSearchParams(location.search).get('channels');
  if (param !== null) return param.split(',').map((c) => c.trim()).filter(isChannelName);
  try {
    const saved = JSON.parse(localStorage.getItem(STORAGE_KEY));
    if (Array.isArray(saved)) return saved.filter(isChannelName);
  } catch {
    // nothing saved, or not readable
  }
  return null;
}

// The demo feed's channels in its order; [] when the feed is off (404), the gateway does not
// answer within 5 s, or the answer is not the expected shape.
async function fetchDemoChannels() {
  try {
    const r = await fetch('/demo/channels', { cache: 'no-store', signal: AbortSignal.timeout(5000) });
    if (!r.ok) return [];
    const body = await r.json();
    return Array.isArray(body?.channels) ? body.channels.filter(isChannelName) : [];
  } catch {
    return [];
  }
}

// ---- the price board -------------------------------------------------------------------------

function makeRow(channel) {
  const tr = el('tr');
  tr.dataset.testid = `row-${channel}`;
  tr.dataset.channel = channel;

  const sym = el('td', 'sym', channel);
  sym.title = channel;
  const sub = el('small', '', 'waiting for data');
  const meta = el('div', 'meta');
  sym.append(meta);

  const price = el('td', 'num price waiting');
  price.dataset.testid = `price-${channel}`;
  const arrow = el('span', 'arrow', '');
  const value = el('span', 'value', '…');
  price.append(arrow, value);

  const change = el('td', 'num change');
  change.dataset.testid = `change-${channel}`;

  const trend = el('td', 'trend');
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', '0 0 100 26');
  svg.setAttribute('preserveAspectRatio', 'none');
  const area = document.createElementNS(svg.namespaceURI, 'polygon');
  area.setAttribute('class', 'area');
  const line = document.createElementNS(svg.namespaceURI, 'polyline');
  svg.append(area, line);
  trend.append(svg);

  // The delivery choice sits under the symbol, beside the message type: it fits a phone's width.
  const delivery = el('select', 'delivery');
  delivery.dataset.testid = `delivery-${channel}`;
  delivery.title = `How ${channel} is delivered: every message, or only the latest (at most n a second)`;
  delivery.setAttribute('aria-label', `Delivery of ${channel}`);
  for (const d of DELIVERY) delivery.append(new Option(d.label, d.value));
  delivery.value = deliveryChoices.get(channel) ?? 'all';
  delivery.onchange = () => setDelivery(channel, delivery.value);
  meta.append(delivery, sub);

  const vol = el('td', 'num vol');
  const msgs = el('td', 'num when msgs');
  const count = el('span', '', '0');
  count.dataset.testid = `msgs-${channel}`;
  const skipped = el('small', '', '');
  skipped.dataset.testid = `conflated-${channel}`;
  skipped.title = 'Messages the gateway skipped for this channel (latest delivery)';
  msgs.append(count, skipped);
  const seq = el('td', 'num when seq');
  seq.dataset.testid = `seq-${channel}`;
  const when = el('td', 'num when');
  when.dataset.testid = `updated-${channel}`;

  const actions = el('td', 'num');
  const remove = el('button', 'remove', '×');
  remove.title = `Unsubscribe from ${channel}`;
  remove.setAttribute('aria-label', `Unsubscribe from ${channel}`);
  remove.dataset.testid = `remove-${channel}`;
  remove.onclick = () => unsubscribe(channel);
  actions.append(remove);

  tr.append(sym, price, change, trend, vol, msgs, seq, when, actions);
  $('rows').append(tr);
  const row = {
    tr, sub, price, arrow, value, change, area, line, vol, seq, when, delivery, count, skipped,
    received: 0, last: null, ts: 0, history: [],
  };
  renderSkipped(row, channel);
  rows.set(channel, row);
  return row;
}

function removeRow(channel) {
  rows.get(channel)?.tr.remove();
  rows.delete(channel);
  updateEmpty();
}

function updateEmpty() {
  $('empty').hidden = rows.size > 0;
  setText($('count'), `${rows.size} subscribed`);
}

function drawTrend(row) {
  const h = row.history;
  if (h.length < 2) return;
  let lo = Infinity;
  let hi = -Infinity;
  for (const p of h) {
    if (p < lo) lo = p;
    if (p > hi) hi = p;
  }
  const span = hi - lo || 1;
  // Until the history is full the line fills the width with what there is.
  const step = 100 / (h.length - 1);
  const pts = h.map((p, i) => `${(i * step).toFixed(1)},${(24 - ((p - lo) / span) * 22).toFixed(1)}`);
  row.line.setAttribute('points', pts.join(' '));
  row.area.setAttribute('points', `0,26 ${pts.join(' ')} 100,26`);
}

function onMessage(env, gap) {
  if (!client.isSubscribed(env.channel)) return; // in flight when the visitor unsubscribed
  const row = rows.get(env.channel) ?? makeRow(env.channel);
  const d = env.data;
  const isPrice = d !== null && typeof d === 'object' && typeof d.price === 'number';
  row.sub.textContent = env.type;
  row.received += 1;
  row.count.textContent = integer.format(row.received);
  if (env.conflated) renderSkipped(row, env.channel);
  row.seq.textContent = env.seq;
  row.tr.dataset.seq = env.seq;
  row.ts = env.ts;
  row.when.textContent = formatAge(Date.now() - env.ts);
  row.when.classList.remove('stale');
  row.when.title = new Date(env.ts).toLocaleString();
  if (gap) log(`${env.channel}: seq ${gap.from}–${gap.to} lost before ${env.seq}`, 'bad');

  if (!isPrice) {
    // Any other channel: show the payload as text.
    row.price.className = 'num price text';
    row.arrow.textContent = '';
    row.value.textContent = typeof d === 'string' ? d : JSON.stringify(d);
    row.price.title = row.value.textContent;
    return;
  }

  const p = d.price;
  row.price.className = 'num price';
  row.value.textContent = formatPrice(p);
  if (row.last !== null && p !== row.last) {
    const up = p > row.last;
    row.arrow.textContent = up ? '▲' : '▼';
    replay(row.price, up ? 'flash-up' : 'flash-down', up ? 'flash-down' : 'flash-up');
  }
  row.last = p;

  if (typeof d.change === 'number') {
    const span = el('span', d.change >= 0 ? 'up' : 'down', `${d.change >= 0 ? '+' : ''}${d.change.toFixed(2)}%`);
    row.change.replaceChildren(span);
    row.tr.classList.toggle('rising', d.change >= 0);
    row.tr.classList.toggle('falling', d.change < 0);
  }
  if (typeof d.volume === 'number') row.vol.textContent = compact.format(d.volume);

  row.history.push(p);
  if (row.history.length > TREND_POINTS) row.history.shift();
  if (typeof d.change !== 'number') {
    const rising = p >= row.history[0];
    row.tr.classList.toggle('rising', rising);
    row.tr.classList.toggle('falling', !rising);
  }
  drawTrend(row);
}

// "N skipped" under the message count: what the gateway left out for this channel (latest
// delivery); hidden while the channel is on "all" and nothing was skipped.
function renderSkipped(row, channel) {
  const n = client.conflatedTotal(channel);
  const choice = deliveryChoices.get(channel) ?? 'all';
  setText(row.skipped, n > 0 || choice !== 'all' ? `${integer.format(n)} skipped` : '');
}

// The "updated" column ages in place.
setInterval(() => {
  const now = Date.now();
  for (const row of rows.values()) {
    if (!row.ts) continue;
    setText(row.when, formatAge(now - row.ts));
    row.when.classList.toggle('stale', now - row.ts > 15000);
  }
}, 1000);

// ---- subscribing -----------------------------------------------------------------------------

function subscribe(channel) {
  if (client.isSubscribed(channel)) return;
  if (!rows.has(channel)) makeRow(channel);
  updateEmpty();
  client.subscribe([channel], { snapshot: true }).then(
    () => log(`subscribed ${channel}`),
    (e) => {
      log(`subscribe ${channel} refused: ${e.code}${e.message ? ` (${e.message})` : ''}`, 'bad');
      if (!client.isSubscribed(channel)) {
        removeRow(channel);
        renderPicker();
        saveChannels();
      }
    },
  );
  saveChannels();
  renderPicker();
}

// A row's delivery choice changed: subscribe again with the new options (no snapshot: the row
// already has the value); the gateway applies them at once.
function setDelivery(channel, value) {
  const d = deliveryOf(value);
  if (d.value === 'all') deliveryChoices.delete(channel);
  else deliveryChoices.set(channel, d.value);
  saveChannels();
  const row = rows.get(channel);
  if (row) renderSkipped(row, channel);
  client.subscribe([channel], { ...d.options, snapshot: false }).then(
    () => log(`${channel}: delivery ${d.label}`),
    (e) => {
      log(`${channel}: delivery ${d.label} refused: ${e.code}${e.message ? ` (${e.message})` : ''}`, 'bad');
      // Back to what the client still has for the channel.
      const { delivery, maxHz } = client.channelOptions(channel);
      const now = DELIVERY.find((x) => x.options.delivery === delivery && (x.options.maxHz ?? null) === maxHz) ?? DELIVERY[0];
      if (now.value === 'all') deliveryChoices.delete(channel);
      else deliveryChoices.set(channel, now.value);
      if (row) row.delivery.value = now.value;
      saveChannels();
    },
  );
}

function unsubscribe(channel) {
  client.unsubscribe([channel]).then(() => log(`unsubscribed ${channel}`), () => {});
  deliveryChoices.delete(channel);
  removeRow(channel);
  saveChannels();
  renderPicker();
}

function toggle(channel) {
  if (client.isSubscribed(channel)) unsubscribe(channel);
  else subscribe(channel);
}

function renderPicker() {
  const filter = $('filter').value.trim().toUpperCase();
  const subscribed = client.channels;
  const custom = subscribed.filter((c) => !demoChannels.includes(c));
  const list = $('symbols');
  const chips = [];
  for (const name of [...custom, ...demoChannels]) {
    if (filter && !name.toUpperCase().includes(filter)) continue;
    const li = el('li', '', name);
    li.dataset.testid = `pick-${name}`;
    li.tabIndex = 0;
    li.setAttribute('role', 'button');
    const on = client.isSubscribed(name);
    li.classList.toggle('on', on);
    li.classList.toggle('custom', custom.includes(name));
    li.setAttribute('aria-pressed', String(on));
    li.title = on ? `Unsubscribe from ${name}` : `Subscribe to ${name}`;
    li.onclick = () => toggle(name);
    li.onkeydown = (e) => {
      if (e.key === 'Enter' || e.key === ' ') {
        e.preventDefault();
        toggle(name);
      }
    };
    chips.push(li);
  }
  if (chips.length === 0) {
    const typed = $('filter').value.trim();
    chips.push(el('li', 'none', isChannelName(typed)
      ? `${demoChannels.length ? 'No demo symbol matches: p' : 'P'}ress Enter to subscribe to "${typed}"`
      : `Channel names: ${CHANNEL_NAME_RULE}`));
  }
  list.replaceChildren(...chips);
}

$('filter').addEventListener('input', renderPicker);
$('add').addEventListener('submit', (e) => {
  e.preventDefault();
  const typed = $('filter').value.trim();
  if (!typed) return;
  // "btcusd" means the demo symbol; anything else is taken as typed (channel names are case-sensitive).
  const name = demoChannels.find((s) => s === typed.toUpperCase()) ?? typed;
  if (!isChannelName(name)) {
    log(`"${typed}" is not a channel name (${CHANNEL_NAME_RULE})`, 'bad');
    return;
  }
  subscribe(name);
  $('filter').value = '';
  renderPicker();
});

// ---- connection status and counters ---------------------------------------------------------

let origin = ''; // how the current connection came about: '', 'resumed', 'new session'

function renderStatus() {
  const state = client.state;
  document.body.dataset.state = state;
  setText($('state'), STATE_LABEL[state] ?? state);
  const o = $('origin');
  setText(o, state === ClientState.OPEN ? origin : '');
  o.className = `origin ${origin === 'resumed' ? 'good' : 'warn'}`;
}

const shown = {};
function metric(id, value, { bad = false } = {}) {
  const node = $(id);
  const text = String(value);
  if (shown[id] === text) return;
  const bump = shown[id] !== undefined && id !== 'seq' && id !== 'received' && id !== 'rtt' && id !== 'session';
  shown[id] = text;
  node.textContent = text;
  node.classList.toggle('bad', bad);
  if (bump) replay(node, 'bump');
}

function renderCounters() {
  const s = client.stats;
  metric('session', client.session ?? '–');
  metric('seq', client.lastSeq);
  metric('received', integer.format(s.received));
  metric('gaps', s.gaps);
  metric('lost', s.lostMessages, { bad: s.lostMessages > 0 });
  metric('replays', s.replays);
  metric('reconnects', s.reconnects);
  metric('resumes', s.resumes);
  metric('resumeFailures', s.resumeFailures, { bad: s.resumeFailures > 0 });
  metric('rtt', s.rttMs === null ? '–' : `${s.rttMs.toFixed(1)} ms`);
}

// Counters change with every message: redraw them at most once per frame.
let countersQueued = false;
function queueCounters() {
  if (countersQueued) return;
  countersQueued = true;
  const run = () => {
    countersQueued = false;
    renderCounters();
  };
  if (document.hidden) setTimeout(run, 250);
  else requestAnimationFrame(run);
}

client.on('message', (env, event) => {
  onMessage(env, event.gap);
  queueCounters();
});
client.on('state', ({ state }) => {
  if (state !== ClientState.OPEN) origin = state === ClientState.RESUMING ? origin : '';
  // A first round trip right away, rather than after the first heartbeat interval.
  if (state === ClientState.OPEN) client.ping().catch(() => {});
  renderStatus();
  queueCounters();
});
client.on('welcome', (w) => {
  log(`welcome: session ${w.session} (heartbeat ${w.heartbeat_ms} ms, replay ${w.replay_size})`, 'info');
  queueCounters();
});
client.on('subscribed', ({ channels }) => {
  if (channels.length > 1) log(`subscribed ${channels.join(', ')}`);
});
client.on('gap', ({ from, to }) => {
  log(`gap: seq ${from}${to > from ? `–${to}` : ''} missing, asking for a replay`, 'warn');
  queueCounters();
});
client.on('replay_done', ({ from, to, sent, lost }) => {
  if (lost) log(`replay ${from}–${to}: ${sent} re-sent, ${lost.from}–${lost.to} no longer held`, 'bad');
  else log(`replay ${from}–${to}: filled (${sent} re-sent)`, 'good');
  queueCounters();
});
client.on('disconnected', ({ code, reason }) => {
  log(`disconnected (${code}${reason ? ` ${reason}` : ''})`, 'warn');
});
client.on('reconnecting', ({ attempt, delayMs }) => {
  log(`reconnecting in ${delayMs} ms (attempt ${attempt})`, 'warn');
});
client.on('resumed', ({ session, replayed, restored, previousSession }) => {
  origin = 'resumed';
  const missed = `${replayed} missed message${replayed === 1 ? '' : 's'} re-sent`;
  // restored: another gateway instance took the session over under a new id.
  if (restored) log(`resumed ${previousSession} on another instance as ${session}: ${missed}`, 'good');
  else log(`resumed ${session}: ${missed}`, 'good');
  renderStatus();
  queueCounters();
});
client.on('resume_failed', ({ session, newSession }) => {
  origin = 'new session';
  log(`resume of ${session} failed: new session ${newSession}, channels re-subscribed with snapshots`, 'warn');
  // The old numbering is gone: rows keep their prices until the snapshots replace them.
  renderStatus();
  queueCounters();
});
client.on('error', ({ code, message, request }) => {
  // Refused subscribes are logged where they are made.
  if (request && request.type === 'subscribe') return;
  log(`error ${code}${message ? `: ${message}` : ''}`, 'bad');
});
client.on('pong', queueCounters);

$('drop').addEventListener('click', () => {
  if (client.state !== ClientState.OPEN) {
    log('not connected: nothing to drop', 'warn');
    return;
  }
  log(`dropping the connection at seq ${client.lastSeq}`, 'warn');
  client.drop();
});

// ---- gateway /stats --------------------------------------------------------------------------

let previousStats = null;

function num(v, digits = 0) {
  return typeof v === 'number' && Number.isFinite(v) ? v.toFixed(digits) : '–';
}

async function pollStats() {
  const panel = $('gateway');
  try {
    const r = await fetch('/stats', { cache: 'no-store' });
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    const s = await r.json();
    const at = performance.now();
    for (const key of ['currentConnections', 'sessions', 'messagesIn', 'messagesOut', 'threads', 'slowClientDisconnects']) {
      setText($(`stat-${key}`), typeof s[key] === 'number' ? integer.format(s[key]) : '–');
    }
    setText($('stat-memoryMB'), `${num(s.memoryMB, 1)} MB`);
    setText($('stat-cpuPercent'), `${num(s.cpuPercent, 1)} %`);
    setText($('stat-uptimeSeconds'), typeof s.uptimeSeconds === 'number' ? formatUptime(s.uptimeSeconds) : '–');
    const lat = s.fanoutLatencyMs ?? {};
    setText($('stat-latency'), `${num(lat.p50, 2)} · ${num(lat.p99, 2)} ms`);
    setText($('stat-resumes'), `${num(s.resumesOk)} · ${num(s.resumesFailed)}`);
    if (previousStats && typeof s.messagesOut === 'number') {
      const perSecond = (s.messagesOut - previousStats.messagesOut) / ((at - previousStats.at) / 1000);
      setText($('stat-outRate'), perSecond >= 0 ? integer.format(Math.round(perSecond)) : '–');
    }
    previousStats = { messagesOut: s.messagesOut, at };
    panel.classList.remove('stale');
    setText($('stats-note'), 'GET /stats every 2 s');
  } catch {
    // Restarting or draining: keep the last values, greyed out, and try again on the next tick.
    panel.classList.add('stale');
    setText($('stats-note'), 'gateway unreachable');
    previousStats = null;
  }
}

// ---- start -----------------------------------------------------------------------------------

// One subscribe per delivery choice; the channels on "all" without options, as a v1 client.
function subscribeAtStart(channels) {
  for (const c of channels) if (!rows.has(c)) makeRow(c);
  updateEmpty();
  const groups = new Map();
  for (const c of channels) {
    const value = deliveryChoices.get(c) ?? null;
    if (!groups.has(value)) groups.set(value, []);
    groups.get(value).push(c);
  }
  for (const [value, group] of groups) {
    const options = value === null ? {} : deliveryOf(value).options;
    client.subscribe(group, { ...options, snapshot: true }).catch(() => {});
  }
}

// Asked first, so that it usually answers before the connection is open.
const demoListed = fetchDemoChannels();
const given = initialChannels();
if (given) subscribeAtStart(given);
else updateEmpty();
renderPicker();
renderStatus();
renderCounters();
client.connect().catch(() => {});
pollStats();
setInterval(pollStats, 2000);
demoListed.then((channels) => {
  demoChannels = channels;
  // A first visit, unless the visitor has already picked a channel meanwhile.
  if (!given && client.channels.length === 0) subscribeAtStart(channels.slice(0, POPULAR_COUNT));
  renderPicker();
});
