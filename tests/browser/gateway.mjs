// Starts the odin-ws binary for a browser or Node test on a free loopback port and stops it by
// PID.
import { spawn } from 'node:child_process';
import net from 'node:net';

export function argBinary() {
  const i = process.argv.indexOf('--binary');
  if (i < 0 || !process.argv[i + 1]) throw new Error('usage: node test.mjs --binary path/to/odin-ws');
  return process.argv[i + 1];
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

export async function startGateway(binary, env = {}) {
  const port = await freePort();
  let output = '';
  const proc = spawn(binary, [], {
    env: { ...process.env, WS_ADDR: `127.0.0.1:${port}`, LOG_LEVEL: 'warn', LOG_FORMAT: 'text', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stdout.on('data', (d) => { output += d; });
  proc.stderr.on('data', (d) => { output += d; });
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 10000;
  while (Date.now() < deadline) {
    try {
      if ((await fetch(`${base}/health`)).ok) break;
    } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
    base,
    ws: `ws://127.0.0.1:${port}/ws`,
    output: () => output,
    async publish(messages) {
      const r = await fetch(`${base}/publish`, { method: 'POST', body: JSON.stringify(messages) });
      if (!r.ok) throw new Error(`publish: ${r.status} ${await r.text()}`);
      return (await r.json()).published;
    },
    async stop() {
      if (proc.exitCode !== null) return proc.exitCode;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10000);
      await new Promise((r) => proc.once('exit', r));
      clearTimeout(timer);
      return proc.exitCode;
    },
  };
}

// A tiny runner: named async checks, a summary line, a non-zero exit on failure.
export async function run(name, checks) {
  let passed = 0;
  let failed = 0;
  for (const [label, fn] of checks) {
    const start = Date.now();
    try {
      await fn();
      passed += 1;
      console.log(`PASS ${name}: ${label} (${Date.now() - start} ms)`);
    } catch (e) {
      failed += 1;
      console.log(`FAIL ${name}: ${label}\n  ${e.stack || e}`);
    }
  }
  return { passed, failed };
}

export function assert(cond, message) {
  if (!cond) throw new Error(message);
}

export async function waitFor(fn, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
