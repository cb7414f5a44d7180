// Opens the page in headless Debian Chromium (playwright-core) against the real gateway with the
// demo feed, and checks what a person would see: live prices, seq, stats, subscribing, and a
// dropped connection that reconnects and resumes.
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { argBinary, assert, run, startGateway, waitFor } from './gateway.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const gw = await startGateway(argBinary(), { WS_DEMO_FEED: '1', WS_DEMO_RATE: '200' });
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
const page = await browser.newPage();
const consoleErrors = [];
page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
page.on('pageerror', (e) => consoleErrors.push(String(e)));
const text = (id) => page.textContent(`[data-testid="${id}"]`);
const number = async (id) => parseFloat((await text(id)).replace(/[^0-9.]/g, ''));

let result;
try {
  await page.goto(gw.base + '/');
  result = await run('page', [
    ['live prices appear and change', async () => {
      const first = await waitFor(async () => {
        const t = (await text('price-BTCUSD')).trim();
        return t !== '…' && t;
      }, 10000, 'a BTCUSD price');
      assert(/[0-9]/.test(first), `price text ${first}`);
      const changed = await waitFor(async () => {
        const rowsSeq = await page.$$eval('tbody tr .seq', (cells) => cells.map((c) => c.textContent).join(','));
        return rowsSeq;
      }, 5000, 'rows with seq');
      assert(changed.length > 0, 'no seq cells');
      const seq1 = await number('seq');
      await waitFor(async () => (await number('seq')) > seq1 + 3, 10000, 'seq to grow');
    }],
    ['stats panel shows the gateway /stats', async () => {
      await waitFor(async () => (await number('stat-messagesOut')) > 0, 6000, 'messagesOut > 0');
      assert((await number('stat-currentConnections')) >= 1, 'currentConnections');
    }],
    ['subscribing through the picker adds a live row', async () => {
      await page.fill('[data-testid="filter"]', 'LINK');
      await page.click('[data-testid="pick-LINKUSD"]');
      await waitFor(async () => {
        const t = await page.textContent('[data-testid="price-LINKUSD"]').catch(() => null);
        return t && t.trim() !== '…';
      }, 10000, 'a LINKUSD price (snapshot or update)');
    }],
    ['a dropped connection reconnects and resumes without loss', async () => {
      const before = await number('seq');
      await page.click('[data-testid="drop"]');
      await waitFor(async () => (await number('resumes')) >= 1, 10000, 'a resume');
      await waitFor(async () => (await number('seq')) > before + 3, 10000, 'seq to continue after resume');
      assert((await text('reconnects')).trim() === '1', `reconnects ${await text('reconnects')}`);
      assert(!(await text('gaps')).includes('lost'), `gaps ${await text('gaps')}`);
      assert((await text('status')).includes('open') || (await text('status')).includes('resumed'), await text('status'));
    }],
    ['no console errors', async () => {
      assert(consoleErrors.length === 0, consoleErrors.join('\n'));
    }],
  ]);
  mkdirSync(join(here, 'out'), { recursive: true });
  await page.screenshot({ path: join(here, 'out', 'page.png'), fullPage: true });
} finally {
  await browser.close();
  const code = await gw.stop();
  if (code !== 0) console.log(`gateway exited with ${code}\n${gw.output()}`);
}
console.log(`${result.passed} passed, ${result.failed} failed`);
process.exit(result.failed ? 1 : 0);
