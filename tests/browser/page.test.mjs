// Opens the live ticker page (web/) in headless Debian Chromium through playwright-core, against
// the real gateway with its demo feed, and checks what a visitor would see: live prices that
// change, a growing seq, the /stats panel, subscribing and unsubscribing through the picker (demo
// symbols, as GET /demo/channels lists them, and any typed channel), and "Drop connection" leading
// to a reconnect and a resume with nothing lost; no console errors. Then, against a gateway with
// the demo feed off (/demo/channels 404), the picker lists only the visitor's own channels and a
// typed channel still works. The delivery choice per row (docs/protocol.md, latest-value
// subscriptions): "4 Hz" on a channel published at ~100/s keeps its count near 4/s and shows the
// skipped count, the choice survives a reload, "all" brings every message again, and the board
// fits a phone's width. Leaves screenshots in tests/browser/out/page.png and page-phone.png.
//   node tests/browser/page.test.mjs --binary build/odin-ws
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { argBinary, assert, Runner, sleep, startGateway, waitFor } from './gateway.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const runner = new Runner('page');
let browser = null;
let gw = null;
let gwOff = null; // the demo feed off
runner.budget(110000, async () => {
  await browser?.close().catch(() => {});
  await Promise.all([gw?.stop(1000), gwOff?.stop(1000)]);
});

// 200 messages/s over 100 symbols: each default symbol updates about twice a second.
gw = await startGateway(argBinary(), { WS_DEMO_FEED: '1', WS_DEMO_RATE: '200' });

let page;
const problems = []; // console errors, page errors, failed requests
try {
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  page = await browser.newPage({ viewport: { width: 1360, height: 900 } });
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`page error: ${e}`));
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
  page.on('response', (r) => { if (r.status() >= 400) problems.push(`HTTP ${r.status()} ${r.url()}`); });
  await page.goto(`${gw.base}/`, { timeout: 10000 });
} catch (e) {
  console.log(`FAIL page: could not open the page\n  ${e.stack || e}`);
  await browser?.close().catch(() => {});
  await gw.stop();
  runner.finish(1);
}

const byId = (id) => page.locator(`[data-testid="${id}"]`);
const text = async (id) => ((await byId(id).first().textContent({ timeout: 2000 })) ?? '').trim();
// "64,012.50" -> 64012.5; NaN when the cell holds no number yet.
const number = async (id) => {
  const t = (await text(id)).replace(/,/g, '');
  return /^-?[0-9.]+/.test(t) ? parseFloat(t) : NaN;
};
// A price cell may carry a ▲/▼ direction mark before the number while it flashes.
const isPrice = (t) => /^[▲▼]?[0-9][0-9,]*\.[0-9]+$/.test(t);
const priceValue = (t) => parseFloat(t.replace(/^[▲▼]/, '').replace(/,/g, ''));

await runner.check('the page connects: status live, a session id', async () => {
  await waitFor(async () => (await text('state')) === 'live', 10000, 'status "live"');
  // Counters are drawn on the next animation frame, so the session id may follow the status.
  await waitFor(async () => /^[0-9a-f]{8,}$/.test(await text('session')), 2000, 'a session id');
  assert((await page.title()).includes('odin-ws'), `title ${await page.title()}`);
});

// What the gateway lists, in the feed's order; the page takes its picker and a first visit's
// channels from it.
const demoChannels = async (base) => (await (await fetch(`${base}/demo/channels`)).json()).channels;

await runner.check('default symbols show live prices that change', async () => {
  // A first visit subscribes to the first 8 channels GET /demo/channels lists.
  const expected = (await demoChannels(gw.base)).slice(0, 8);
  const rowsNow = () => page.$$eval('[data-testid^="row-"]', (trs) => trs.map((tr) => tr.dataset.channel));
  await waitFor(async () => (await rowsNow()).length >= expected.length, 5000, `${expected.length} default rows`);
  const rows = await rowsNow();
  assert(expected.length === 8 && rows.join() === expected.join(), `default rows ${rows}, listed ${expected}`);
  const first = await waitFor(async () => {
    const t = await text('price-BTCUSD');
    return isPrice(t) && t;
  }, 10000, 'a BTCUSD price');
  const price = priceValue(first);
  assert(price > 1000, `BTCUSD price ${first}`);
  await waitFor(async () => (await text('price-BTCUSD')) !== first, 15000, `the BTCUSD price to change from ${first}`);
  assert(/^[+-][0-9.]+%$/.test(await text('change-BTCUSD')), `change "${await text('change-BTCUSD')}"`);
  const priced = await page.$$eval('[data-testid^="price-"]', (cells) => cells.filter((c) => /[0-9]/.test(c.textContent)).length);
  assert(priced >= 6, `${priced} rows with a price`);
});

await runner.check('the last seq grows, with no gaps', async () => {
  const seq1 = await number('seq');
  assert(seq1 > 0, `seq ${seq1}`);
  await waitFor(async () => (await number('seq')) >= seq1 + 5, 10000, `seq to grow past ${seq1 + 5}`);
  assert((await text('gaps')) === '0' && (await text('lost')) === '0', `gaps ${await text('gaps')} lost ${await text('lost')}`);
  assert(Number(await text('received')) >= seq1, `received ${await text('received')}`);
});

await runner.check('the stats panel shows the gateway\'s /stats', async () => {
  await waitFor(async () => (await number('stat-messagesOut')) > 0, 6000, 'messagesOut > 0');
  assert((await number('stat-currentConnections')) >= 1, `connections ${await text('stat-currentConnections')}`);
  assert((await number('stat-messagesIn')) > 0, `messagesIn ${await text('stat-messagesIn')}`);
  assert(/MB$/.test(await text('stat-memoryMB')), `memory ${await text('stat-memoryMB')}`);
  await waitFor(async () => (await number('stat-outRate')) >= 0, 5000, 'an out/s rate');
});

await runner.check('subscribing through the picker adds a live row', async () => {
  const linked = (await demoChannels(gw.base)).filter((c) => c.includes('LINK'));
  assert(linked.join() === 'LINKUSD', `listed channels with LINK: ${linked}`);
  await byId('filter').fill('link');
  const chips = await page.$$eval('[data-testid^="pick-"]', (lis) => lis.map((li) => li.textContent));
  assert(chips.join() === linked.join(), `chips for "link": ${chips}`);
  await byId('pick-LINKUSD').click();
  await waitFor(async () => isPrice(await text('price-LINKUSD').catch(() => '')), 10000, 'a LINKUSD price');
  assert(await byId('pick-LINKUSD').evaluate((li) => li.classList.contains('on')), 'the chip is marked on');
  assert(await page.evaluate(() => window.odin.isSubscribed('LINKUSD')), 'the client subscribed LINKUSD');
});

await runner.check('any typed channel can be subscribed; its messages show; unsubscribe removes it', async () => {
  await byId('filter').fill('page-test.custom');
  await byId('filter').press('Enter');
  await waitFor(() => byId('row-page-test.custom').count(), 3000, 'the custom row');
  await waitFor(() => page.evaluate(() => window.odin.stats && window.odin.channels.includes('page-test.custom')), 3000, 'the subscribe');
  await sleep(200); // let the subscribe reach the gateway before publishing
  await gw.publish({ channel: 'page-test.custom', type: 'note', data: { hello: 'world' } });
  await waitFor(async () => (await text('price-page-test.custom')).includes('world'), 5000, 'the published payload');
  await byId('remove-page-test.custom').click();
  await waitFor(async () => (await byId('row-page-test.custom').count()) === 0, 3000, 'the row to go');
  assert(!(await page.evaluate(() => window.odin.isSubscribed('page-test.custom'))), 'still subscribed');
});

await runner.check('Chromium negotiated permessage-deflate: compressed market data arrives byte for byte', async () => {
  const Z = 'page-test.deflate';
  const before = await gw.stats();
  assert(before.compressedConnections >= 1, `compressedConnections ${before.compressedConnections}`);
  await page.evaluate((z) => {
    window.__deflated = [];
    window.odin.on('message', (env) => { if (env.channel === z) window.__deflated.push(JSON.stringify(env.data)); });
    window.odin.subscribe([z]);
  }, Z);
  await waitFor(() => page.evaluate((z) => window.odin.channels.includes(z), Z), 3000, 'the subscribe');
  await sleep(200);
  // Order-book updates of ~500 bytes with real numbers, each different: they compress.
  const published = Array.from({ length: 20 }, (_, i) => ({
    symbol: 'BTCUSD', seq: 88120000 + i, last: (43251.55 + i * 0.02).toFixed(2),
    bids: Array.from({ length: 5 }, (_, j) => [(43251.17 - j * 0.37 - i * 0.01).toFixed(2), (0.125 + j * 0.031 + i * 0.001).toFixed(4)]),
    asks: Array.from({ length: 5 }, (_, j) => [(43251.90 + j * 0.41 + i * 0.01).toFixed(2), (0.211 + j * 0.027 + i * 0.001).toFixed(4)]),
    volume24h: (18342.771 + i * 0.5).toFixed(3), high24h: '43980.00', low24h: '42710.15', ts: 1733220000123 + i,
  }));
  await gw.publish(published.map((data) => ({ channel: Z, type: 'book', data })));
  await waitFor(() => page.evaluate(() => window.__deflated.length >= 20), 5000, '20 messages');
  const got = await page.evaluate(() => window.__deflated);
  assert(got.length === 20 && got.every((g, i) => g === JSON.stringify(published[i])),
    `received ${got.length}; first mismatch at ${got.findIndex((g, i) => g !== JSON.stringify(published[i]))}`);
  const after = await gw.stats();
  assert(after.compressedMessages - before.compressedMessages >= 20,
    `compressedMessages ${before.compressedMessages} -> ${after.compressedMessages}`);
  await page.evaluate((z) => window.odin.unsubscribe([z]), Z);
});

// Publishes on `channel` at about `perSecond` for `ms` (batches that catch up with the clock);
// resolves with how many were published.
async function publishAtRate(channel, perSecond, ms) {
  const start = Date.now();
  const total = Math.round((perSecond * ms) / 1000);
  let sent = 0;
  while (sent < total) {
    const due = Math.min(total, Math.floor(((Date.now() - start) * perSecond) / 1000) + 1);
    if (due > sent) {
      await gw.publish(Array.from({ length: due - sent }, (_, k) => ({ channel, type: 'tick', data: { price: 100 + ((sent + k) % 50) } })));
      sent = due;
    }
    await sleep(10);
  }
  return sent;
}

const RATE = 'page-test.rate';
const skippedCount = async () => {
  const m = /^([0-9,]+) skipped$/.exec(await text(`conflated-${RATE}`));
  return m ? Number(m[1].replace(/,/g, '')) : NaN;
};

await runner.check('"4 Hz" on a channel published at ~100/s: about 4 messages/s, the skipped count shown', async () => {
  await byId('filter').fill(RATE);
  await byId('filter').press('Enter');
  await waitFor(() => byId(`row-${RATE}`).count(), 3000, 'the row');
  await waitFor(async () => (await text('log')).includes(`subscribed ${RATE}`), 3000, 'the subscribe');
  await byId(`delivery-${RATE}`).selectOption('4');
  await waitFor(async () => (await text('log')).includes(`${RATE}: delivery 4 Hz`), 3000, 'the new options confirmed');
  const before = await number(`msgs-${RATE}`);
  const start = Date.now();
  const published = await publishAtRate(RATE, 100, 3000);
  const seconds = (Date.now() - start) / 1000;
  const during = (await number(`msgs-${RATE}`)) - before;
  const rate = during / seconds;
  console.log(`  (${published} published in ${seconds.toFixed(2)} s; the row counted ${during}: ${rate.toFixed(2)}/s)`);
  assert(rate >= 3 && rate <= 5.5, `rate ${rate.toFixed(2)}/s`);
  await sleep(700); // the last held message goes out in the next slot
  const received = (await number(`msgs-${RATE}`)) - before;
  const skipped = await skippedCount();
  assert(skipped > 0 && received + skipped === published, `received ${received} + skipped ${skipped} != published ${published}`);
  assert((await text(`price-${RATE}`)).endsWith((100 + ((published - 1) % 50)).toFixed(2)),
    `the last value shown: ${await text(`price-${RATE}`)}`);
  assert((await text('gaps')) === '0' && (await text('lost')) === '0', `gaps ${await text('gaps')} lost ${await text('lost')}`);
});

await runner.check('the delivery choice survives a reload', async () => {
  await page.reload({ timeout: 10000 });
  await waitFor(async () => (await text('state')) === 'live', 10000, 'status "live"');
  await waitFor(() => byId(`row-${RATE}`).count(), 3000, 'the row after the reload');
  assert((await byId(`delivery-${RATE}`).inputValue()) === '4', `choice after reload: ${await byId(`delivery-${RATE}`).inputValue()}`);
  const options = await page.evaluate((c) => window.odin.channelOptions(c), RATE);
  assert(options.delivery === 'latest' && options.maxHz === 4, JSON.stringify(options));
  await waitFor(() => page.evaluate(() => window.odin.stats.received > 0), 5000, 'live messages');
  await sleep(300);
  const published = await publishAtRate(RATE, 100, 1500);
  await sleep(700);
  const received = await number(`msgs-${RATE}`);
  // The reload's snapshot counts as one message; then at most 4/s (and one held) in 1.5 s.
  assert(received >= 2 && received <= 10, `received ${received} of ${published} after the reload`);
});

await runner.check('switching back to "all": the count follows every published message', async () => {
  await byId(`delivery-${RATE}`).selectOption('all');
  await waitFor(async () => (await text('log')).includes(`${RATE}: delivery all`), 3000, 'the new options confirmed');
  const before = await number(`msgs-${RATE}`);
  const skipped = await skippedCount();
  const published = await publishAtRate(RATE, 100, 2000);
  await waitFor(async () => (await number(`msgs-${RATE}`)) >= before + published, 5000, `${published} more messages counted`);
  await sleep(300);
  assert((await number(`msgs-${RATE}`)) === before + published, `count ${await number(`msgs-${RATE}`)}, expected ${before + published}`);
  assert((await skippedCount()) === skipped, `skipped changed under "all": ${skipped} -> ${await skippedCount()}`);
  const stored = await page.evaluate(() => localStorage.getItem('odin-ws.delivery'));
  assert(stored === '{}', `stored choices ${stored}`);
});

await runner.check('"Drop connection" reconnects and resumes the session without loss', async () => {
  // Record every seq the page's client delivers from now on.
  // The hook and the starting point are taken in one step: the seq shown on the page may lag.
  const before = await page.evaluate(() => {
    window.__seqs = [];
    window.odin.on('message', (env) => window.__seqs.push(env.seq));
    return window.odin.lastSeq;
  });
  const session = await text('session');
  await byId('drop').click();
  await waitFor(async () => (await number('resumes')) >= 1, 10000, 'a resume');
  await waitFor(async () => (await text('status')).includes('resumed'), 3000, 'status "resumed"');
  await waitFor(async () => (await number('seq')) >= before + 10, 10000, `seq to continue past ${before + 10}`);
  assert((await text('session')) === session, `session changed: ${session} -> ${await text('session')}`);
  assert((await text('reconnects')) === '1', `reconnects ${await text('reconnects')}`);
  assert((await text('resumeFailures')) === '0', `resume failures ${await text('resumeFailures')}`);
  assert((await text('lost')) === '0', `lost ${await text('lost')}`);
  const seqs = await page.evaluate(() => window.__seqs);
  const holes = seqs.filter((s, i) => i > 0 && s !== seqs[i - 1] + 1);
  assert(seqs.length >= 10 && seqs[0] === before + 1 && holes.length === 0,
    `delivered after the drop: ${seqs.slice(0, 40).join(',')}${seqs.length > 40 ? ',…' : ''} (before ${before})`);
  const stats = await page.evaluate(() => window.odin.stats);
  assert(stats.lostGaps === 0 && stats.lostMessages === 0 && stats.resumes === 1, JSON.stringify(stats));
  const log = await text('log');
  assert(log.includes('resumed') && log.includes('disconnected'), `event log: ${log.slice(0, 300)}`);
  const gs = await gw.stats();
  assert(gs.resumesOk >= 1, `gateway resumesOk ${gs.resumesOk}`);
});

await runner.check('on a phone\'s width the board fits: delivery choice and counts visible', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  await sleep(300);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert(overflow <= 0, `the page scrolls sideways by ${overflow} px`);
  for (const id of [`delivery-BTCUSD`, `msgs-BTCUSD`, `price-BTCUSD`]) {
    const box = await byId(id).boundingBox();
    assert(box && box.width > 0 && box.x >= 0 && box.x + box.width <= 390, `${id} at ${JSON.stringify(box)}`);
  }
  try {
    mkdirSync(join(here, 'out'), { recursive: true });
    await page.screenshot({ path: join(here, 'out', 'page-phone.png'), fullPage: true });
  } catch (e) {
    console.log(`(no phone screenshot: ${e.message})`);
  }
  await page.setViewportSize({ width: 1360, height: 900 });
});

await runner.check('no console errors, page errors or failed requests', async () => {
  assert(problems.length === 0, problems.join('\n'));
});

try {
  mkdirSync(join(here, 'out'), { recursive: true });
  await page.screenshot({ path: join(here, 'out', 'page.png'), fullPage: true });
} catch (e) {
  console.log(`(no screenshot: ${e.message})`);
}

await runner.check('demo feed off: /demo/channels 404, the picker lists only own channels, typed ones work', async () => {
  gwOff = await startGateway(argBinary(), {});
  const listed = await fetch(`${gwOff.base}/demo/channels`);
  assert(listed.status === 404, `/demo/channels with the feed off: ${listed.status}`);
  const off = await browser.newPage(); // a context of its own: a first visit, nothing saved
  const offProblems = []; // as above, but the 404 of /demo/channels is expected
  off.on('console', (m) => {
    if (m.type() === 'error' && !m.location().url.endsWith('/demo/channels')) offProblems.push(`console: ${m.text()}`);
  });
  off.on('pageerror', (e) => offProblems.push(`page error: ${e}`));
  off.on('requestfailed', (r) => offProblems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
  off.on('response', (r) => {
    if (r.status() >= 400 && !r.url().endsWith('/demo/channels')) offProblems.push(`HTTP ${r.status()} ${r.url()}`);
  });
  const listedToPage = off.waitForResponse((r) => r.url().endsWith('/demo/channels'), { timeout: 10000 });
  await off.goto(`${gwOff.base}/`, { timeout: 10000 });
  const offId = (id) => off.locator(`[data-testid="${id}"]`);
  const offText = async (id) => ((await offId(id).first().textContent({ timeout: 2000 })) ?? '').trim();
  const chips = () => off.$$eval('[data-testid^="pick-"]', (lis) => lis.map((li) => li.textContent));
  const rowCount = () => off.locator('[data-testid^="row-"]').count();
  assert((await listedToPage).status() === 404, 'the page\'s /demo/channels not 404');
  await waitFor(async () => (await offText('state')) === 'live', 10000, 'status "live"');
  await sleep(200); // the page has handled the 404 by now
  assert((await chips()).length === 0 && (await rowCount()) === 0, `chips ${await chips()}, ${await rowCount()} rows`);
  assert(await offId('count').textContent() === '0 subscribed', `count "${await offId('count').textContent()}"`);
  await offId('filter').fill('offline.typed');
  await offId('filter').press('Enter');
  await waitFor(() => off.evaluate(() => window.odin.channels.includes('offline.typed')), 3000, 'the subscribe');
  await waitFor(async () => (await chips()).join() === 'offline.typed', 3000, 'the typed channel\'s chip, alone');
  await sleep(200); // let the subscribe reach the gateway before publishing
  await gwOff.publish({ channel: 'offline.typed', type: 'note', data: { feed: 'off' } });
  await waitFor(async () => (await offText('price-offline.typed')).includes('off'), 5000, 'the published payload');
  assert(offProblems.length === 0, offProblems.join('\n'));
  await off.close();
});

await browser.close().catch(() => {});
const code = await gw.stop();
const codeOff = gwOff ? await gwOff.stop() : 0;
if (code !== 0 || codeOff !== 0) {
  console.log(`FAIL page: gateway exited with ${code} (feed off: ${codeOff})\n${gw.output()}${gwOff?.output() ?? ''}`);
  runner.finish(1);
}
runner.finish();
