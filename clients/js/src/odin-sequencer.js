// odin-sequencer.js: delivers one session's data messages to odin-client.js exactly once and in
// `seq` order. Later messages wait while an earlier one is missing and a replay of the hole is
// asked for; duplicates (replay and resume overlap) are dropped; what the gateway no longer holds
// is given up and reported once, on the next message delivered. It also tracks the stream
// position (JetStream mode) that a resume on another instance starts from. It owns no socket:
// the client feeds it messages and replies, and it calls back up.

export class Sequencer {
  /**
   * @param {{maxBuffered: number, replayRetries: number}} options
   * @param {object} stats  the client's counters, updated in place
   * @param {object} up  the client:
   *   deliver(envelope, gap)  a message in order; gap is {from, to} lost just before it, or null
   *   emit(type, detail)      gap, replay_start, replay_done
   *   canReplay()             whether a gap may be replayed now (open, not resuming)
   *   connected()             whether there is a socket (for a retry of a refused replay)
   *   replay(from, to)        sends the `replay` request; a promise of its reply
   */
  constructor(options, stats, up) {
    this._opt = options;
    this._stats = stats;
    this._up = up;
    this.lastSeq = 0; // last seq delivered; all before it were delivered or given up
    this._buffer = new Map(); // seq -> envelope, waiting for an earlier one
    this._replay = null; // {from, to, tries} while a replay is outstanding
    this._lost = null; // {from, to} lost just before the next message to deliver
    this._retryTimer = null;

    // Position (JetStream mode; stays null against a gateway without `pos`). A reply's `pos`
    // covers what was sent before the reply: while earlier seqs still wait in the reorder
    // buffer it is held in _posAfter as {seq, pos} and taken once lastSeq reaches seq.
    this._pos = null;
    this._posAfter = [];
  }

  /** Every message up to this stream position was delivered (or reported lost); or null. */
  get position() { return this._pos; }
  get buffered() { return this._buffer.size; }

  /** A new numbering: nothing of the old session can be delivered any more. */
  restart() {
    this.lastSeq = 0;
    this._buffer = new Map();
    this._pos = null;
    this._posAfter = [];
    this._replay = null;
    this._lost = null;
  }

  // Before a resume that may restore the session elsewhere: that instance numbers what it
  // re-sends from lastSeq + 1 by itself, so what the buffer holds beyond lastSeq (the old
  // connection's numbering) must not be taken for it. Either answer makes the buffer redundant
  // anyway: the instance that ran the session re-sends every seq after last_seq, a restore
  // everything after last_pos, and resume_failed starts afresh.
  dropBuffer() {
    this._buffer = new Map();
  }

  // Another instance took the session over: reply positions held for seqs of the old numbering
  // are void, the `resumed` reply's position covers them.
  restored() {
    this._posAfter = [];
  }

  /** The connection is gone: a replay outstanding on it will not be answered. */
  stop() {
    clearTimeout(this._retryTimer);
    this._retryTimer = null;
    this._replay = null;
  }

  onData(env) {
    const seq = env.seq;
    if (seq <= this.lastSeq || this._buffer.has(seq)) {
      this._stats.duplicates += 1;
      return;
    }
    if (seq === this.lastSeq + 1 && this._buffer.size === 0) {
      this._deliver(env);
      return;
    }
    this._buffer.set(seq, env);
    if (this._buffer.size > this._opt.maxBuffered) this._skipTo(this._firstBuffered() - 1);
    this.flush();
  }

  // Delivers what is contiguous; asks for a replay of the first hole, if any.
  flush() {
    while (this._buffer.has(this.lastSeq + 1)) {
      const env = this._buffer.get(this.lastSeq + 1);
      this._buffer.delete(this.lastSeq + 1);
      this._deliver(env);
    }
    for (const seq of this._buffer.keys()) {
      if (seq <= this.lastSeq) this._buffer.delete(seq); // resume re-sent it
    }
    if (this._buffer.size === 0 || this._replay !== null) return;
    // During a resume the gateway is still re-sending: a hole now may yet be filled.
    if (!this._up.canReplay()) return;
    const from = this.lastSeq + 1;
    const to = this._firstBuffered() - 1;
    this._stats.gaps += 1;
    this._up.emit('gap', { from, to });
    this._replay = { from, to, tries: 0 };
    this._sendReplay();
  }

  _sendReplay() {
    const r = this._replay;
    this._up.emit('replay_start', { from: r.from, to: r.to });
    this._up.replay(r.from, r.to).catch((e) => {
      // Refusals are handled in onReplayRefused; a timeout means the replay is not coming.
      if (e.code === 'timeout' && this._replay === r) this._finishReplay(r, null);
    });
  }

  /** The gateway refused the replay with `code`. */
  onReplayRefused(code) {
    const r = this._replay;
    if (!r) return;
    if (code === 'rate_limited' && r.tries < this._opt.replayRetries) {
      r.tries += 1;
      this._retryTimer = setTimeout(() => {
        if (this._replay === r && this._up.connected()) this._sendReplay();
      }, 1000);
      return;
    }
    this._finishReplay(r, null);
  }

  /** `replay_done`'s data. The data messages came before it: what is still missing is lost. */
  onReplayDone(data) {
    const r = this._replay;
    if (r) this._finishReplay(r, data);
  }

  _finishReplay(r, data) {
    this._replay = null;
    this._stats.replays += 1;
    const lost = this._skipTo(r.to);
    this._up.emit('replay_done', {
      from: r.from,
      to: r.to,
      sent: data ? data.sent : 0,
      first_available: data ? data.first_available : null,
      lost,
    });
    this.flush();
  }

  // Gives up on every missing seq up to `to`: delivers what is buffered, records the rest.
  // Returns the span of the seqs given up, or null.
  _skipTo(to) {
    let span = null;
    while (this.lastSeq < to) {
      const next = this.lastSeq + 1;
      const env = this._buffer.get(next);
      if (env) {
        this._buffer.delete(next);
        this._deliver(env);
      } else {
        this.lastSeq = next;
        this._lost = this._lost ? { from: this._lost.from, to: next } : { from: next, to: next };
        this._stats.lostMessages += 1;
        span = span ? { from: span.from, to: next } : { from: next, to: next };
      }
    }
    if (span) this._stats.lostGaps += 1;
    this._advancePos();
    return span;
  }

  _firstBuffered() {
    let first = Infinity;
    for (const seq of this._buffer.keys()) if (seq < first) first = seq;
    return first;
  }

  // A `subscribed` / `resumed` reply's position: valid once everything received before the
  // reply (up to the highest seq seen) has been delivered or given up.
  replyPos(pos) {
    if (typeof pos !== 'number') return;
    let upTo = this.lastSeq;
    for (const seq of this._buffer.keys()) if (seq > upTo) upTo = seq;
    this._posAfter.push({ seq: upTo, pos });
    this._advancePos();
  }

  _advancePos() {
    if (this._posAfter.length === 0) return;
    this._posAfter = this._posAfter.filter(({ seq, pos }) => {
      if (seq > this.lastSeq) return true;
      if (this._pos === null || pos > this._pos) this._pos = pos;
      return false;
    });
  }

  _deliver(env) {
    this.lastSeq = env.seq;
    // Only what is delivered in order moves the position: a buffered later message must not
    // carry it past the ones still missing (a restore re-sends from the position on).
    if (typeof env.pos === 'number' && (this._pos === null || env.pos > this._pos)) this._pos = env.pos;
    this._advancePos();
    this._stats.received += 1;
    const gap = this._lost;
    this._lost = null;
    this._up.deliver(env, gap);
  }
}
