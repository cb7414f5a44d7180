// Test harness shared by page.test.mjs and client.test.mjs: starts the odin-ws binary on a free
// loopback port, stops it by PID (also when a test throws or the time budget runs out), and a
// small runner that prints one line per check and "N passed, M failed" at the end.
import { spawn } from 'node:child_process';
import net from 'node:net';

const started = new Set(); // child processes still running

// Whatever happens to this process, no gateway outlives it.
process.on('exit', () => {
  for (const proc of started) {
    try {
      process.kill(proc.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

export function argBinary() {
  const i = process.argv.indexOf('--binary');
  const binary = i >= 0 ? process.argv[i + 1] : undefined;
  if (!binary) {
    console.error('usage: node <test>.mjs --binary path/to/odin-ws');
    process.exit(2);
  }
  return binary;
}

export async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Starts the gateway and waits until GET /health answers 200 (10 s at most).
 * @param {string} binary
 * @param {object} env  extra environment (WS_ADDR, LOG_LEVEL are set here)
 * @param {{port?: number}} [opts]  a fixed port (to restart on the same address)
 */
export async function startGateway(binary, env = {}, { port } = {}) {
  port ??= await freePort();
  let output = '';
  const proc = spawn(binary, [], {
    env: { ...process.env, WS_ADDR: `127.0.0.1:${port}`, LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  started.add(proc);
  let exited = null;
  const exit = new Promise((resolve) => {
    proc.once('exit', (code, signal) => {
      started.delete(proc);
      exited = { code, signal };
      resolve(exited);
    });
    proc.once('error', (e) => {
      started.delete(proc);
      exited = { code: null, signal: null, error: e };
      resolve(exited);
    });
  });
  proc.stdout.on('data', (d) => { output += d; });
  proc.stderr.on('data', (d) => { output += d; });
  const base = `http://127.0.0.1:${port}`;
  const gw = {
    pid: proc.pid,
    port,
    base,
    ws: `ws://127.0.0.1:${port}/ws`,
    output: () => output,
    async stats() {
      return (await fetch(`${base}/stats`)).json();
    },
    async publish(messages) {
      const r = await fetch(`${base}/publish`, { method: 'POST', body: JSON.stringify(messages) });
      if (!r.ok) throw new Error(`publish: ${r.status} ${await r.text()}`);
      return (await r.json()).published;
    },
    /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code (null if killed). */
    async stop(graceMs = 5000) {
      if (exited) return exited.code;
      process.kill(proc.pid, 'SIGTERM');
      const timer = setTimeout(() => {
        try {
          process.kill(proc.pid, 'SIGKILL');
        } catch {
          // exited meanwhile
        }
      }, graceMs);
      const { code } = await exit;
      clearTimeout(timer);
      return code;
    },
  };
  const deadline = Date.now() + 10000;
  for (;;) {
    if (exited) {
      throw new Error(`gateway exited at startup (${JSON.stringify(exited)}):\n${output}`);
    }
    try {
      const r = await fetch(`${base}/health`, { signal: AbortSignal.timeout(1000) });
      if (r.status === 200) return gw;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await gw.stop(1000);
      throw new Error(`gateway /health not 200 within 10 s:\n${output}`);
    }
    await sleep(50);
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function assert(cond, message) {
  if (!cond) throw new Error(`assertion failed: ${message}`);
}

/** Polls `fn` (sync or async) until it returns something truthy; returns that value. */
export async function waitFor(fn, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}

/**
 * Runs named checks in order and counts them. A check that throws fails; the next one still
 * runs (each test builds on the gateway, not on the previous check's state, unless said so).
 */
export class Runner {
  constructor(name) {
    this.name = name;
    this.passed = 0;
    this.failed = 0;
  }

  async check(label, fn) {
    const start = Date.now();
    try {
      await fn();
      this.passed += 1;
      console.log(`PASS ${this.name}: ${label} (${Date.now() - start} ms)`);
      return true;
    } catch (e) {
      this.failed += 1;
      console.log(`FAIL ${this.name}: ${label} (${Date.now() - start} ms)\n  ${String(e && e.stack || e).replace(/\n/g, '\n  ')}`);
      return false;
    }
  }

  /** Prints the summary line and exits: 0 only when every check passed. */
  finish(extraFailures = 0) {
    const failed = this.failed + extraFailures;
    console.log(`${this.passed} passed, ${failed} failed`);
    process.exit(failed || this.passed === 0 ? 1 : 0);
  }

  /** Ends the run (as a failure) if it takes longer than `ms`, whatever is hanging. */
  budget(ms, cleanup) {
    const timer = setTimeout(async () => {
      console.log(`FAIL ${this.name}: the whole test took longer than ${ms} ms`);
      try {
        await Promise.race([cleanup(), sleep(3000)]);
      } finally {
        this.finish(1);
      }
    }, ms);
    timer.unref();
  }
}
