// The live ticker page: an OdinClient, a table of prices, a channel picker, the client's
// counters and the gateway's /stats.
import { OdinClient } from './odin-client.js';

const DEMO_SYMBOLS = ['BTCUSD', 'ETHUSD', 'SOLUSD', 'BNBUSD', 'XRPUSD', 'ADAUSD', 'DOGEUSD', 'AVAXUSD',
  'DOTUSD', 'LINKUSD', 'MATICUSD', 'LTCUSD', 'TRXUSD', 'ATOMUSD', 'UNIUSD', 'XLMUSD', 'ETCUSD', 'FILUSD',
  'APTUSD', 'ARBUSD', 'NEARUSD', 'OPUSD', 'ICPUSD', 'HBARUSD', 'VETUSD', 'ALGOUSD', 'AAVEUSD', 'MKRUSD',
  'SANDUSD', 'MANAUSD', 'AXSUSD', 'EGLDUSD', 'XTZUSD', 'EOSUSD', 'THETAUSD', 'FTMUSD', 'GRTUSD', 'SNXUSD',
  'CRVUSD', 'LDOUSD'];
for (let i = DEMO_SYMBOLS.length; i < 100; i++) DEMO_SYMBOLS.push(`SYM${String(i).padStart(3, '0')}`);
const DEFAULTS = ['BTCUSD', 'ETHUSD', 'SOLUSD', 'BNBUSD', 'XRPUSD', 'ADAUSD', 'DOGEUSD', 'AVAXUSD'];

const $ = (id) => document.getElementById(id);
const rows = new Map();
const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
const client = new OdinClient(url);

function log(text, kind = '') {
  const li = document.createElement('li');
  li.className = kind;
  li.textContent = `${new Date().toLocaleTimeString()}  ${text}`;
  $('log').prepend(li);
  while ($('log').children.length > 40) $('log').lastChild.remove();
}

function counters() {
  const s = client.stats;
  $('seq').textContent = client.lastSeq;
  $('received').textContent = s.received;
  $('gaps').textContent = s.unrecovered ? `${s.gaps} (${s.unrecovered} lost)` : s.gaps;
  $('replays').textContent = s.replays;
  $('reconnects').textContent = s.reconnects;
  $('resumes').textContent = s.resumeFailures ? `${s.resumes} (+${s.resumeFailures} failed)` : s.resumes;
  $('session').textContent = client.session ?? '-';
}

function row(channel) {
  if (rows.has(channel)) return rows.get(channel);
  const tr = document.createElement('tr');
  tr.dataset.testid = `row-${channel}`;
  tr.innerHTML = `<td class="sym"></td><td class="num price" data-testid="price-${channel}">…</td>
    <td class="num change"></td><td class="num seq"></td><td class="num when"></td>
    <td><button class="remove" title="Unsubscribe">×</button></td>`;
  tr.querySelector('.sym').textContent = channel;
  tr.querySelector('.remove').onclick = () => unsubscribe(channel);
  const ordered = [...rows.keys(), channel].sort();
  const before = rows.get(ordered[ordered.indexOf(channel) + 1]);
  $('rows').insertBefore(tr, before ?? null);
  rows.set(channel, tr);
  $('empty').hidden = true;
  return tr;
}

function formatPrice(p) {
  if (typeof p !== 'number') return String(p);
  return p.toLocaleString(undefined, { minimumFractionDigits: p < 1 ? 4 : 2, maximumFractionDigits: p < 1 ? 5 : 2 });
}

function subscribe(channel) {
  if (!channel || client.channels.has(channel)) return;
  row(channel);
  client.subscribe([channel], { snapshot: true });
  renderPicker();
}

function unsubscribe(channel) {
  client.unsubscribe([channel]);
  rows.get(channel)?.remove();
  rows.delete(channel);
  $('empty').hidden = rows.size > 0;
  renderPicker();
}

function renderPicker() {
  const filter = $('filter').value.trim().toUpperCase();
  const list = $('symbols');
  list.textContent = '';
  for (const s of DEMO_SYMBOLS.filter((x) => x.includes(filter)).slice(0, 60)) {
    const li = document.createElement('li');
    li.textContent = s;
    li.dataset.testid = `pick-${s}`;
    if (client.channels.has(s)) li.className = 'on';
    li.onclick = () => (client.channels.has(s) ? unsubscribe(s) : subscribe(s));
    list.append(li);
  }
}

client.addEventListener('message', ({ detail: env }) => {
  const tr = rows.get(env.channel) ?? row(env.channel);
  const d = env.data ?? {};
  const price = typeof d === 'object' && d !== null && 'price' in d ? d.price : d;
  const priceCell = tr.querySelector('.price');
  const old = parseFloat(priceCell.dataset.value);
  priceCell.textContent = formatPrice(price);
  priceCell.dataset.value = price;
  const change = tr.querySelector('.change');
  if (typeof d.change === 'number') {
    change.textContent = `${d.change >= 0 ? '+' : ''}${d.change.toFixed(2)}%`;
    change.className = `num change ${d.change >= 0 ? 'up' : 'down'}`;
  }
  tr.querySelector('.seq').textContent = env.seq;
  tr.querySelector('.when').textContent = new Date(env.ts).toLocaleTimeString();
  if (!Number.isNaN(old) && price !== old) {
    tr.classList.remove('flash-up', 'flash-down');
    void tr.offsetWidth;  // restart the animation
    tr.classList.add(price > old ? 'flash-up' : 'flash-down');
  }
  counters();
});

client.addEventListener('state', ({ detail }) => {
  $('state').textContent = detail.state;
  document.body.dataset.state = detail.state;
  counters();
});
client.addEventListener('welcome', ({ detail }) => log(`welcome: session ${detail.session}`));
client.addEventListener('gap', ({ detail }) => {
  log(`gap ${detail.from}-${detail.to} ${detail.recovered ? 'filled by replay' : 'could not be replayed'}`, detail.recovered ? '' : 'bad');
  counters();
});
client.addEventListener('reconnecting', ({ detail }) => log(`reconnecting in ${Math.round(detail.delay)} ms`, 'warn'));
client.addEventListener('resumed', ({ detail }) => {
  $('state').textContent = 'resumed';
  log(`resumed ${detail.session}: ${detail.replayed} message(s) replayed`, 'good');
  counters();
});
client.addEventListener('resume_failed', () => {
  log('resume failed: new session, channels re-subscribed with snapshots', 'warn');
  counters();
});
client.addEventListener('server_error', ({ detail }) => log(`error ${detail.code}: ${detail.message}`, 'bad'));

$('drop').onclick = () => {
  log('dropping the connection');
  client.dropConnection();
};
$('filter').oninput = renderPicker;
$('add').onsubmit = (e) => {
  e.preventDefault();
  const name = $('filter').value.trim();
  if (/^[A-Za-z0-9_.:-]{1,128}$/.test(name)) subscribe(name);
  else log(`not a channel name: ${name}`, 'bad');
  $('filter').value = '';
  renderPicker();
};

async function pollStats() {
  try {
    const s = await (await fetch('/stats')).json();
    for (const key of ['currentConnections', 'messagesIn', 'messagesOut']) $(`stat-${key}`).textContent = s[key].toLocaleString();
    $('stat-memoryMB').textContent = `${s.memoryMB.toFixed(1)} MB`;
    $('stat-cpuPercent').textContent = `${s.cpuPercent.toFixed(1)} %`;
    $('stat-uptimeSeconds').textContent = `${Math.floor(s.uptimeSeconds)} s`;
    $('stat-latency').textContent = `${s.fanoutLatencyMs.p99.toFixed(2)} ms`;
  } catch {
    // the gateway is restarting or draining; try again next tick
  }
}

for (const s of DEFAULTS) {
  client.channels.add(s);
  row(s);
}
renderPicker();
client.connect();
pollStats();
setInterval(pollStats, 2000);
window.odin = client;  // for the console (and the browser test)
