// Resume on any instance, end to end in headless Chromium: two gateways in JetStream mode on one
// nats-server, behind HAProxy (round-robin, no stickiness). The live ticker page, loaded through
// HAProxy, is subscribed to a channel fed a steady stream; the gateway it is connected to is
// killed with SIGKILL. The page's client (the JavaScript SDK, clients/js, served under /sdk/)
// must reconnect through HAProxy to the other instance, which restores the session (`resumed`
// with `restored: true`, a new session id), and end with every published message exactly once,
// in stream order, seq contiguous, no gap given up, within a bounded time.
//   node tests/browser/resume.test.mjs --binary build/odin-ws
import { chromium } from 'playwright-core';
import {
  argBinary, assert, Runner, sleep, startGateway, startHaproxy, startNats, waitFor,
} from './gateway.mjs';

const CHANNEL = 'RESUME.feed';
const TOTAL = 300; // messages published, one every INTERVAL_MS
const INTERVAL_MS = 20;
const KILL_AFTER = 100; // the page's gateway dies once this many are published
const RESUME_WITHIN_MS = 10000; // kill -> `resumed`
const COMPLETE_WITHIN_MS = 15000; // last publish -> the page holds every message

const runner = new Runner('resume');
const binary = argBinary();
let browser = null;
let nats = null;
let proxy = null;
const gateways = [];
runner.budget(58000, async () => {
  await browser?.close().catch(() => {});
  await Promise.all([proxy?.stop(1000), ...gateways.map((g) => g.stop(1000))]);
  await nats?.stop(1000);
});

const problems = []; // console errors and page errors, reported (a dying instance makes some)
let page;
try {
  nats = await startNats();
  for (const id of ['a', 'b']) {
    gateways.push(await startGateway(binary, {
      NATS_URL: nats.url,
      WS_BROKER: 'jetstream',
      WS_INSTANCE_ID: `resume-${id}`,
      WS_RESUME_TTL: '30s',
    }));
  }
  proxy = await startHaproxy(gateways);
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  page = await browser.newPage();
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`page error: ${e}`));
  await page.goto(`${proxy.base}/?channels=${CHANNEL}`, { timeout: 10000 });
} catch (e) {
  console.log(`FAIL resume: set-up\n  ${String(e.stack || e).replace(/\n/g, '\n  ')}`);
  await browser?.close().catch(() => {});
  runner.finish(1);
}

// Which instance holds the page's connection and its subscription (read straight from each
// gateway, not through HAProxy).
async function connectedInstance() {
  const stats = await Promise.all(gateways.map((g) => g.stats().catch(() => null)));
  const busy = gateways.filter((g, i) => stats[i] && stats[i].currentConnections > 0 && stats[i].channels > 0);
  return busy.length === 1 ? busy[0] : null;
}

let victim = null; // the instance the page is on at first
let survivor = null;
let firstSession = null;

await runner.check('the page connects through HAProxy and subscribes on one instance', async () => {
  await waitFor(() => page.evaluate(() => window.odin && window.odin.state === 'open'), 10000, 'the client open');
  victim = await waitFor(connectedInstance, 5000, 'one instance with the page and its channel');
  survivor = gateways.find((g) => g !== victim);
  const other = await survivor.stats();
  assert(other.currentConnections === 0, `the other instance has ${other.currentConnections} connections`);
  // Everything the client does from now on (the page's own listeners stay as they are).
  firstSession = await page.evaluate(() => {
    const rec = { msgs: [], events: [] };
    window.__rec = rec;
    const c = window.odin;
    c.on('message', (env, event) => rec.msgs.push({ seq: env.seq, pos: env.pos, i: env.data && env.data.i, gap: event.gap }));
    for (const type of ['welcome', 'disconnected', 'resumed', 'resume_failed', 'gap', 'replay_done']) {
      c.on(type, (detail) => rec.events.push({ type, detail, t: Date.now() }));
    }
    return c.session;
  });
  console.log(`  (page on port ${victim.port}, session ${firstSession})`);
  // In JetStream mode the `subscribed` reply carries a position: without one the client cannot
  // ask another instance to restore the session.
  await waitFor(() => page.evaluate(() => window.odin.position !== null), 3000, 'a position');
});

let killedAt = 0;
let publishedAt = 0;
await runner.check(`a steady stream; kill -9 the page's instance after ${KILL_AFTER} messages`, async () => {
  assert(victim && survivor, 'no instance found');
  // Published through the surviving instance, one message per request: each answers once the
  // stream has stored it, so the stream holds them in `i` order.
  for (let i = 0; i < TOTAL; i++) {
    const start = Date.now();
    if (i === KILL_AFTER) {
      await victim.kill();
      killedAt = Date.now();
    }
    await survivor.publish({ channel: CHANNEL, type: 'tick', data: { i } });
    await sleep(Math.max(0, INTERVAL_MS - (Date.now() - start)));
  }
  publishedAt = Date.now();
});

await runner.check('the other instance restores the session: resumed, restored, a new session id', async () => {
  const resumed = await waitFor(() => page.evaluate(() => window.__rec.events.find((e) => e.type === 'resumed')),
    Math.max(1000, killedAt + RESUME_WITHIN_MS - Date.now()), 'resumed');
  const d = resumed.detail;
  const welcomes = await page.evaluate(() => window.__rec.events.filter((e) => e.type === 'welcome').map((e) => e.detail.session));
  console.log(`  (resumed ${resumed.t - killedAt} ms after the kill: replayed ${d.replayed}, pos ${d.pos})`);
  assert(d.restored === true && d.previousSession === firstSession, JSON.stringify(d));
  // The new id is the one the surviving instance's welcome announced.
  assert(d.session !== firstSession && d.session === welcomes[welcomes.length - 1], `${JSON.stringify(d)} welcomes ${welcomes}`);
  assert(typeof d.pos === 'number', `pos ${d.pos}`);
  assert(await page.evaluate(() => window.odin.session) === d.session, 'client.session follows');
  const failed = await page.evaluate(() => window.__rec.events.filter((e) => e.type === 'resume_failed'));
  assert(failed.length === 0, JSON.stringify(failed));
  const now = await survivor.stats();
  assert(now.currentConnections === 1 && now.channels >= 1, `surviving instance ${JSON.stringify(now)}`);
});

await runner.check('every message exactly once, in order, seq contiguous, nothing lost', async () => {
  await waitFor(() => page.evaluate((n) => window.__rec.msgs.length >= n, TOTAL),
    Math.max(1000, publishedAt + COMPLETE_WITHIN_MS - Date.now()), `${TOTAL} messages`);
  await sleep(300); // anything extra (a duplicate) would arrive now
  const { msgs, events, stats } = await page.evaluate(() => ({ ...window.__rec, stats: window.odin.stats }));
  console.log(`  (all ${TOTAL} delivered ${Date.now() - publishedAt} ms after the last publish)`);
  assert(msgs.length === TOTAL, `${msgs.length} messages delivered for ${TOTAL} published`);
  const order = msgs.map((m) => m.i);
  assert(order.every((i, k) => i === k), `delivery order of i: ${order.join(',')}`);
  const seqBreak = msgs.findIndex((m, k) => k > 0 && m.seq !== msgs[k - 1].seq + 1);
  assert(seqBreak < 0, `seq not contiguous at ${seqBreak}: ${msgs.slice(Math.max(0, seqBreak - 3), seqBreak + 3).map((m) => m.seq)}`);
  const posBreak = msgs.findIndex((m, k) => typeof m.pos !== 'number' || (k > 0 && m.pos <= msgs[k - 1].pos));
  assert(posBreak < 0, `pos not increasing at ${posBreak}: ${JSON.stringify(msgs[posBreak])}`);
  assert(msgs.every((m) => m.gap === null), `a message reports lost ones: ${JSON.stringify(msgs.find((m) => m.gap))}`);
  const lostReplays = events.filter((e) => e.type === 'replay_done' && e.detail.lost);
  assert(lostReplays.length === 0, JSON.stringify(lostReplays));
  assert(stats.lostMessages === 0 && stats.lostGaps === 0 && stats.resumeFailures === 0 && stats.resumes === 1,
    JSON.stringify(stats));
  if (stats.duplicates || stats.gaps) console.log(`  (duplicates dropped ${stats.duplicates}, gaps filled ${stats.gaps})`);
});

if (problems.length) console.log(`  (page console: ${problems.slice(0, 5).join(' | ')})`);
if (runner.failed) {
  const tail = (text) => text.split('\n').slice(-15).join('\n    ');
  for (const g of gateways) console.log(`  gateway :${g.port} output:\n    ${tail(g.output())}`);
}
await browser.close().catch(() => {});
await proxy.stop();
const codes = await Promise.all(gateways.map((g) => g.stop()));
await nats.stop();
if (codes[gateways.indexOf(survivor)] !== 0) {
  console.log(`FAIL resume: the surviving gateway exited with ${codes[gateways.indexOf(survivor)]}\n${survivor.output()}`);
  runner.finish(1);
}
runner.finish();
