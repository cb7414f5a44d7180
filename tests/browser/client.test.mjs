// Tests web/odin-client.js under Node with npm `ws` against the real gateway: ordered delivery,
// a gap filled by replay, reconnect + resume, and resume_failed starting fresh.
import WebSocket from 'ws';
import { OdinClient } from '../../web/odin-client.js';
import { argBinary, assert, run, startGateway, waitFor } from './gateway.mjs';

const gw = await startGateway(argBinary(), { WS_REPLAY_SIZE: '50' });

function client(options = {}) {
  const c = new OdinClient(gw.ws, { WebSocket, minBackoffMs: 50, maxBackoffMs: 200, ...options });
  c.received = [];
  c.addEventListener('message', (e) => c.received.push(e.detail));
  return c;
}

const opened = (c) => waitFor(() => c.state === 'open' && c.session, 5000, 'open');

let result;
try {
  result = await run('client', [
    ['subscribes and delivers in seq order', async () => {
      const c = client();
      c.channels.add('A');
      c.connect();
      await opened(c);
      await waitFor(() => c.ws.readyState === 1, 2000, 'socket');
      await new Promise((r) => setTimeout(r, 100));
      await gw.publish(Array.from({ length: 20 }, (_, i) => ({ channel: 'A', data: { i } })));
      await waitFor(() => c.received.length >= 20, 5000, '20 messages');
      assert(c.received.every((m, i) => m.seq === i + 1 && m.data.i === i), 'order');
      c.close();
    }],
    ['a gap is filled by replay', async () => {
      const c = client({ _dropSeqForTest: 3 });
      c.channels.add('G');
      c.connect();
      await opened(c);
      await new Promise((r) => setTimeout(r, 100));
      await gw.publish(Array.from({ length: 6 }, (_, i) => ({ channel: 'G', data: { i } })));
      await waitFor(() => c.received.length >= 6, 5000, '6 messages');
      assert(c.received.map((m) => m.seq).join() === '1,2,3,4,5,6', c.received.map((m) => m.seq).join());
      assert(c.stats.gaps === 1 && c.stats.replays === 1 && c.stats.unrecovered === 0, JSON.stringify(c.stats));
      c.close();
    }],
    ['reconnects and resumes after the socket dies', async () => {
      const c = client();
      c.channels.add('R');
      c.connect();
      await opened(c);
      await new Promise((r) => setTimeout(r, 100));
      await gw.publish([{ channel: 'R', data: 1 }, { channel: 'R', data: 2 }]);
      await waitFor(() => c.received.length >= 2, 5000, '2 messages');
      const session = c.session;
      c.ws._socket.destroy();  // a network failure, not a close handshake
      await gw.publish([{ channel: 'R', data: 3 }, { channel: 'R', data: 4 }]);
      await waitFor(() => c.stats.resumes === 1, 5000, 'a resume');
      await waitFor(() => c.received.length >= 4, 5000, 'the missed messages');
      assert(c.session === session, 'same session');
      assert(c.received.map((m) => m.data).join() === '1,2,3,4', c.received.map((m) => m.data).join());
      c.close();
    }],
    ['resume_failed starts a fresh session and re-subscribes', async () => {
      const c = client();
      c.channels.add('F');
      c.session = '0123456789abcd00';  // unknown to the gateway
      c.lastSeq = 5;
      c._attempt = 1;
      c.connect();
      await waitFor(() => c.stats.resumeFailures === 1, 5000, 'resume_failed');
      await opened(c);
      assert(c.session !== '0123456789abcd00' && c.lastSeq === 0, `session ${c.session} seq ${c.lastSeq}`);
      await new Promise((r) => setTimeout(r, 100));
      await gw.publish({ channel: 'F', data: 'fresh' });
      await waitFor(() => c.received.length >= 1, 5000, 'a message on the fresh session');
      assert(c.received[0].seq === 1 && c.received[0].data === 'fresh', JSON.stringify(c.received[0]));
      c.close();
    }],
  ]);
} finally {
  const code = await gw.stop();
  if (code !== 0) console.log(`gateway exited with ${code}\n${gw.output()}`);
}
console.log(`${result.passed} passed, ${result.failed} failed`);
process.exit(result.failed ? 1 : 0);
