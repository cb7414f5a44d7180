// odin-client.js: a dependency-free client for the odin-ws protocol (PROTOCOL.md v1).
// Connects, subscribes, numbers nothing itself but watches the server's seq: a gap triggers a
// replay and messages are delivered in order; heartbeats keep the connection alive; an unexpected
// close reconnects with backoff and resumes the session. Works in browsers and in Node (pass
// `WebSocket` in the options). Events (via addEventListener, detail in event.detail):
//   state {state}            connecting | open | reconnecting | closed
//   welcome {session, ...}   a new connection's welcome
//   message {envelope}       a data message, in seq order
//   subscribed / unsubscribed {channels}
//   gap {from, to, recovered}  a seq gap; recovered=false when the replay could not fill it
//   replay {from, to, sent}  a replay finished
//   reconnecting {attempt, delay}
//   resumed {session, replayed}
//   resume_failed {}         the old session is gone: channels are re-subscribed with snapshot
//   server_error {code, message, id}
export class OdinClient extends EventTarget {
  constructor(url, options = {}) {
    super();
    this.url = url;
    this.WebSocket = options.WebSocket || globalThis.WebSocket;
    this.minBackoffMs = options.minBackoffMs ?? 250;
    this.maxBackoffMs = options.maxBackoffMs ?? 10000;
    this.channels = new Set();
    this.session = null;
    this.lastSeq = 0;
    this.state = 'closed';
    this.stats = { received: 0, gaps: 0, unrecovered: 0, replays: 0, reconnects: 0, resumes: 0, resumeFailures: 0 };
    this._dropSeqForTest = options._dropSeqForTest ?? null;  // test hook: pretend this seq was lost
    this._pending = new Map();   // seq -> envelope waiting for an earlier one
    this._replaying = null;      // {from, to} while a replay is outstanding
    this._nextId = 1;
    this._attempt = 0;
    this._closing = false;
    this._heartbeatTimer = null;
    this._lastHeard = 0;
    this._heartbeatMs = 30000;
  }

  connect() {
    this._closing = false;
    this._open();
    return this;
  }

  close() {
    this._closing = true;
    clearInterval(this._heartbeatTimer);
    clearTimeout(this._reconnectTimer);
    if (this.ws) this.ws.close(1000);
    this._setState('closed');
  }

  subscribe(channels, { snapshot = true } = {}) {
    for (const c of channels) this.channels.add(c);
    return this._send({ type: 'subscribe', data: { channels, snapshot } });
  }

  unsubscribe(channels) {
    for (const c of channels) this.channels.delete(c);
    return this._send({ type: 'unsubscribe', data: { channels } });
  }

  // Closes the socket as a network failure would: the client reconnects and resumes.
  dropConnection() {
    if (this.ws) this.ws.close(4001, 'dropped by the user');
  }

  _send(request) {
    if (!this.ws || this.ws.readyState !== 1) return null;
    const id = this._nextId++;
    this.ws.send(JSON.stringify({ ...request, id }));
    return id;
  }

  _emit(type, detail) {
    this.dispatchEvent(Object.assign(new Event(type), { detail }));
  }

  _setState(state) {
    if (this.state === state) return;
    this.state = state;
    this._emit('state', { state });
  }

  _open() {
    this._setState(this._attempt ? 'reconnecting' : 'connecting');
    const ws = new this.WebSocket(this.url);
    this.ws = ws;
    const resuming = this.session !== null;
    ws.onmessage = (event) => this._onMessage(event.data, resuming);
    ws.onclose = () => this._onClose(ws);
    ws.onerror = () => {};
  }

  _onClose(ws) {
    if (ws !== this.ws) return;
    clearInterval(this._heartbeatTimer);
    if (this._closing) return this._setState('closed');
    const delay = Math.min(this.maxBackoffMs, this.minBackoffMs * 2 ** this._attempt) * (0.5 + Math.random() / 2);
    this._attempt += 1;
    this.stats.reconnects += 1;
    this._setState('reconnecting');
    this._emit('reconnecting', { attempt: this._attempt, delay });
    this._reconnectTimer = setTimeout(() => this._open(), delay);
  }

  _startHeartbeat(intervalMs) {
    clearInterval(this._heartbeatTimer);
    this._heartbeatMs = intervalMs;
    this._lastHeard = Date.now();
    this._heartbeatTimer = setInterval(() => {
      // Nothing heard for three intervals: the connection is dead even if the socket says not.
      if (Date.now() - this._lastHeard > 3 * intervalMs) return this.ws.close(4002, 'no pong');
      this._send({ type: 'heartbeat' });
    }, Math.max(250, intervalMs / 2));
  }

  _onMessage(text, resuming) {
    this._lastHeard = Date.now();
    let msg;
    try { msg = JSON.parse(text); } catch { return; }
    if (typeof msg.seq === 'number') return this._onData(msg);
    switch (msg.type) {
      case 'welcome':
        this._startHeartbeat(msg.data.heartbeat_ms);
        this._emit('welcome', msg.data);
        if (resuming && this.session) {
          this._freshSession = msg.data.session;
          this.ws.send(JSON.stringify({ type: 'resume', data: { session: this.session, last_seq: this.lastSeq }, id: this._nextId++ }));
        } else {
          this._adopt(msg.data.session);
          this._setState('open');
          if (this.channels.size) this._send({ type: 'subscribe', data: { channels: [...this.channels], snapshot: true } });
        }
        break;
      case 'resumed':
        this._attempt = 0;
        this.stats.resumes += 1;
        this._setState('open');
        this._emit('resumed', msg.data);
        break;
      case 'subscribed':
      case 'unsubscribed':
        this._emit(msg.type, msg.data);
        break;
      case 'replay_done':
        this._onReplayDone(msg.data);
        break;
      case 'pong':
        break;
      case 'error':
        if (msg.data.code === 'resume_failed') {
          this.stats.resumeFailures += 1;
          this._adopt(this._freshSession);
          this._attempt = 0;
          this._setState('open');
          this._emit('resume_failed', {});
          if (this.channels.size) this._send({ type: 'subscribe', data: { channels: [...this.channels], snapshot: true } });
        } else {
          this._emit('server_error', { ...msg.data, id: msg.id });
        }
        break;
      default:
        break;
    }
  }

  _adopt(session) {
    this.session = session;
    this.lastSeq = 0;
    this._pending.clear();
    this._replaying = null;
  }

  _onData(env) {
    if (env.seq === this._dropSeqForTest) { this._dropSeqForTest = null; return; }
    if (env.seq <= this.lastSeq) return;  // a replayed duplicate
    if (env.seq === this.lastSeq + 1) {
      this._deliver(env);
      this._drainPending();
      return;
    }
    this._pending.set(env.seq, env);
    if (!this._replaying) {
      const from = this.lastSeq + 1;
      const to = env.seq - 1;
      this._replaying = { from, to };
      this.stats.gaps += 1;
      this._send({ type: 'replay', data: { from, to } });
    }
  }

  _deliver(env) {
    this.lastSeq = env.seq;
    this.stats.received += 1;
    this._emit('message', env);
  }

  _drainPending() {
    while (this._pending.has(this.lastSeq + 1)) {
      const next = this._pending.get(this.lastSeq + 1);
      this._pending.delete(this.lastSeq + 1);
      this._deliver(next);
    }
  }

  _onReplayDone(data) {
    this.stats.replays += 1;
    const gap = this._replaying;
    this._replaying = null;
    let recovered = true;
    if (gap && this.lastSeq < gap.to) {
      // The ring no longer held part of the gap: skip what is lost and carry on.
      recovered = false;
      this.stats.unrecovered += 1;
      this.lastSeq = gap.to;
      this._drainPending();
    }
    this._emit('replay', data);
    if (gap) this._emit('gap', { ...gap, recovered });
    if (this._pending.size) {  // another gap opened meanwhile
      const first = Math.min(...this._pending.keys());
      this._onData(this._pending.get(first));
    }
  }
}
