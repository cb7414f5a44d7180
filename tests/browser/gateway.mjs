// Test harness shared by the browser tests: starts the odin-ws binary on a free loopback port
// (and, for resume.test.mjs, a JetStream nats-server and HAProxy), stops each by PID (also when a
// test throws or the time budget runs out), and a small runner that prints one line per check
// and "N passed, M failed" at the end.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const started = new Set(); // child processes still running
const tempDirs = []; // removed at exit

// Whatever happens to this process, nothing it started outlives it.
process.on('exit', () => {
  for (const proc of started) {
    try {
      process.kill(proc.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
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
    /** kill -9 by PID, as a crash would; resolves once it is gone. */
    async kill() {
      if (exited) return;
      process.kill(proc.pid, 'SIGKILL');
      await exit;
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

// A child process tracked like the gateways: killed by PID at exit; `stop()` sends SIGTERM and
// waits (SIGKILL after `graceMs`).
function spawnTracked(cmd, args, what) {
  let output = '';
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  started.add(proc);
  let exited = null;
  const exit = new Promise((resolve) => {
    const done = (info) => {
      started.delete(proc);
      exited = info;
      resolve(info);
    };
    proc.once('exit', (code, signal) => done({ code, signal }));
    proc.once('error', (error) => done({ code: null, signal: null, error }));
  });
  proc.stdout.on('data', (d) => { output += d; });
  proc.stderr.on('data', (d) => { output += d; });
  return {
    pid: proc.pid,
    output: () => output,
    exited: () => exited,
    async stop(graceMs = 3000) {
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
    async failed(why) {
      await this.stop(1000);
      return new Error(`${what}: ${why}:\n${output}`);
    },
  };
}

/**
 * A nats-server with JetStream (file storage in a temporary folder) on a free loopback port, as
 * tests/integration/nats_support.py NatsServer(jetstream=True) starts it; resolves once the
 * JetStream API answers.
 */
export async function startNats({ binary = process.env.NATS_SERVER || '/usr/sbin/nats-server' } = {}) {
  const port = await freePort();
  const storeDir = mkdtempSync(join(tmpdir(), 'odin-nats-js-'));
  tempDirs.push(storeDir);
  const p = spawnTracked(binary, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', storeDir], 'nats-server');
  const deadline = Date.now() + 10000;
  while (!(await jetStreamAnswers(port))) {
    if (p.exited()) throw await p.failed('exited at startup');
    if (Date.now() > deadline) throw await p.failed('JetStream not ready within 10 s');
    await sleep(50);
  }
  return { ...p, port, url: `nats://127.0.0.1:${port}` };
}

// Connects with the NATS text protocol and asks $JS.API.INFO; true when it answers without error.
function jetStreamAnswers(port) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    let data = '';
    const finish = (ok) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), 1000);
    sock.on('error', () => finish(false));
    sock.on('data', (d) => {
      data += d;
      if (data.startsWith('INFO ') && data.includes('\r\n') && !sock.asked) {
        sock.asked = true;
        sock.write('CONNECT {"verbose":false}\r\nSUB _INBOX.ready 1\r\nPUB $JS.API.INFO _INBOX.ready 0\r\n\r\n');
      }
      const at = data.indexOf('MSG _INBOX.ready');
      if (at >= 0 && data.indexOf('}', at) > 0) finish(!data.slice(at).includes('"error"'));
    });
  });
}

/**
 * Debian's HAProxy in front of `servers` (each {port}): HTTP mode, round-robin, health check
 * GET /health every 300 ms, no stickiness; a connection the chosen server refuses is retried on
 * another (redispatch). Resolves once GET /health through it answers 200.
 */
export async function startHaproxy(servers, { binary = '/usr/sbin/haproxy' } = {}) {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'odin-haproxy-'));
  tempDirs.push(dir);
  const config = join(dir, 'haproxy.cfg');
  writeFileSync(config, [
    'global',
    '  maxconn 200', // keeps its open-files limit small
    'defaults',
    '  mode http',
    '  timeout connect 1s',
    '  timeout client 30s',
    '  timeout server 30s',
    '  timeout tunnel 60s', // an upgraded WebSocket connection
    '  retries 2',
    '  option redispatch 1',
    'frontend page',
    `  bind 127.0.0.1:${port}`,
    '  default_backend gateways',
    'backend gateways',
    '  balance roundrobin',
    '  option httpchk GET /health',
    '  http-check expect status 200',
    '  default-server check inter 300 fall 2 rise 2',
    ...servers.map((s, i) => `  server gw${i} 127.0.0.1:${s.port}`),
    '',
  ].join('\n'));
  const p = spawnTracked(binary, ['-db', '-f', config], 'haproxy');
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 10000;
  for (;;) {
    if (p.exited()) throw await p.failed('exited at startup');
    try {
      const r = await fetch(`${base}/health`, { signal: AbortSignal.timeout(1000) });
      if (r.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw await p.failed('/health through it not 200 within 10 s');
    await sleep(50);
  }
  return { ...p, port, base, config };
}
