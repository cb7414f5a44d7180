"""Delivers one session's data messages exactly once and in ``seq`` order (web/odin-sequencer.js).

Later messages wait in a reorder buffer while an earlier one is missing and a replay of the
hole is asked for; duplicates (replay and resume overlap) are dropped; what the gateway no longer
holds is given up and reported once, on the next message delivered. It also tracks the stream
position (JetStream mode) that a resume on another instance starts from. It owns no socket and
no event loop: the client feeds it messages and replies, and it calls back up through ``Host``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from typing import Protocol


@dataclass
class Gap:
    """A span of seqs, both ends included."""

    start: int
    end: int


@dataclass
class Message:
    """A data message (envelope) as delivered to the application.

    ``pos``: the JetStream stream sequence (JetStream mode only, else None). ``conflated``: how
    many messages of the channel the gateway skipped just before this one (``latest``
    subscriptions; else 0). ``gap``: the seqs lost for good just before this one, or None.
    """

    seq: int
    ts: int
    type: str
    channel: str
    data: Any
    pos: Optional[int] = None
    conflated: int = 0
    gap: Optional[Gap] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_envelope(cls, env: Dict[str, Any]) -> "Message":
        pos = env.get("pos")
        conflated = env.get("conflated")
        return cls(
            seq=int(env["seq"]),
            ts=int(env.get("ts", 0)),
            type=str(env.get("type", "message")),
            channel=str(env.get("channel", "")),
            data=env.get("data"),
            pos=pos if isinstance(pos, int) and not isinstance(pos, bool) else None,
            conflated=conflated if isinstance(conflated, int) and conflated > 0 else 0,
            raw=env,
        )


class Host(Protocol):
    """What the sequencer needs from the client."""

    def deliver(self, message: Message) -> None:
        """A message in order (``message.gap`` set when messages just before it were lost)."""

    def emit(self, event: str, detail: Dict[str, Any]) -> None:
        """``gap``, ``replay_start``, ``replay_done``."""

    def can_replay(self) -> bool:
        """Whether a gap may be replayed now (open, not resuming)."""

    def connected(self) -> bool:
        """Whether there is a connection (for the retry of a refused replay)."""

    def replay(self, start: int, end: int, on_timeout: Callable[[], None]) -> None:
        """Sends the ``replay`` request; calls on_timeout when no reply comes in time."""

    def call_later(self, delay: float, callback: Callable[[], None]) -> Any:
        """Schedules callback; returns something with ``cancel()``."""


@dataclass
class _Replay:
    start: int
    end: int
    tries: int = 0


@dataclass
class Stats:
    received: int = 0  # data messages delivered
    duplicates: int = 0  # data messages already delivered (replay and resume overlap)
    gaps: int = 0  # gaps detected
    replays: int = 0  # replays answered
    lost_messages: int = 0  # seqs given up as lost
    lost_gaps: int = 0  # gaps that replay could not fill
    reconnects: int = 0  # connections opened after the first
    resumes: int = 0
    resume_failures: int = 0
    conflated: int = 0  # messages the gateway skipped for latest subscriptions
    token_refreshes: int = 0  # `auth` requests the gateway accepted
    rtt: Optional[float] = None  # last heartbeat round trip, seconds
    buffered: int = 0  # messages waiting in the reorder buffer (a snapshot)


class Sequencer:
    def __init__(self, host: Host, stats: Stats, max_buffered: int = 10000,
                 replay_retries: int = 3, replay_retry_delay: float = 1.0) -> None:
        self._up = host
        self._stats = stats
        self._max_buffered = max_buffered
        self._replay_retries = replay_retries
        self._retry_delay = replay_retry_delay
        self.last_seq = 0  # last seq delivered; all before it were delivered or given up
        self._buffer: Dict[int, Message] = {}
        self._replay: Optional[_Replay] = None
        self._lost: Optional[Gap] = None
        self._retry: Any = None
        # Position (JetStream mode; None against a gateway without `pos`). A reply's `pos`
        # covers what was sent before the reply: while earlier seqs still wait in the buffer it
        # is held in _pos_after as (seq, pos) and taken once last_seq reaches seq.
        self._pos: Optional[int] = None
        self._pos_after: List[Tuple[int, int]] = []

    @property
    def position(self) -> Optional[int]:
        """Every message up to this stream position was delivered (or reported lost)."""
        return self._pos

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    @property
    def replaying(self) -> bool:
        return self._replay is not None

    def restart(self) -> None:
        """A new numbering: nothing of the old session can be delivered any more."""
        self.stop()
        self.last_seq = 0
        self._buffer = {}
        self._pos = None
        self._pos_after = []
        self._lost = None

    def drop_buffer(self) -> None:
        """Before a resume that may restore the session elsewhere: that instance numbers what it
        re-sends from last_seq + 1 itself, so the old connection's later seqs must not be taken
        for it (and either answer makes the buffer redundant)."""
        self._buffer = {}

    def restored(self) -> None:
        """Another instance took the session over: reply positions held for the old numbering
        are void, the `resumed` reply's position covers them."""
        self._pos_after = []

    def stop(self) -> None:
        """The connection is gone: a replay outstanding on it will not be answered."""
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        self._replay = None

    def on_data(self, msg: Message) -> None:
        seq = msg.seq
        if seq <= self.last_seq or seq in self._buffer:
            self._stats.duplicates += 1
            return
        if seq == self.last_seq + 1 and not self._buffer:
            self._deliver(msg)
            return
        self._buffer[seq] = msg
        if len(self._buffer) > self._max_buffered:
            self._skip_to(self._first_buffered() - 1)
        self.flush()

    def flush(self) -> None:
        """Delivers what is contiguous; asks for a replay of the first hole, if any."""
        while self.last_seq + 1 in self._buffer:
            self._deliver(self._buffer.pop(self.last_seq + 1))
        for seq in [s for s in self._buffer if s <= self.last_seq]:
            del self._buffer[seq]  # resume re-sent it
        if not self._buffer or self._replay is not None:
            return
        # During a resume the gateway is still re-sending: a hole now may yet be filled.
        if not self._up.can_replay():
            return
        start = self.last_seq + 1
        end = self._first_buffered() - 1
        self._stats.gaps += 1
        self._up.emit("gap", {"from": start, "to": end})
        self._replay = _Replay(start, end)
        self._send_replay()

    def _send_replay(self) -> None:
        current = self._replay
        assert current is not None
        r: _Replay = current
        self._up.emit("replay_start", {"from": r.start, "to": r.end})

        def timed_out() -> None:
            if self._replay is r:
                self._finish_replay(r, None)

        self._up.replay(r.start, r.end, timed_out)

    def on_replay_refused(self, code: str) -> None:
        """The gateway refused the replay with ``code``."""
        r = self._replay
        if r is None:
            return
        if code == "rate_limited" and r.tries < self._replay_retries:
            r.tries += 1

            def retry() -> None:
                self._retry = None
                if self._replay is r and self._up.connected():
                    self._send_replay()

            self._retry = self._up.call_later(self._retry_delay, retry)
            return
        self._finish_replay(r, None)

    def on_replay_done(self, data: Dict[str, Any]) -> None:
        """`replay_done`'s data. The data messages came before it: what is still missing is lost."""
        r = self._replay
        if r is not None:
            self._finish_replay(r, data)

    def _finish_replay(self, r: _Replay, data: Optional[Dict[str, Any]]) -> None:
        self._replay = None
        self._stats.replays += 1
        lost = self._skip_to(r.end)
        self._up.emit("replay_done", {
            "from": r.start,
            "to": r.end,
            "sent": data.get("sent", 0) if data else 0,
            "first_available": data.get("first_available") if data else None,
            "lost": {"from": lost.start, "to": lost.end} if lost else None,
        })
        self.flush()

    def _skip_to(self, end: int) -> Optional[Gap]:
        """Gives up on every missing seq up to ``end``: delivers what is buffered, records the
        rest. Returns the span of the seqs given up, or None."""
        span: Optional[Gap] = None
        while self.last_seq < end:
            nxt = self.last_seq + 1
            msg = self._buffer.pop(nxt, None)
            if msg is not None:
                self._deliver(msg)
                continue
            self.last_seq = nxt
            self._lost = Gap(self._lost.start, nxt) if self._lost else Gap(nxt, nxt)
            self._stats.lost_messages += 1
            span = Gap(span.start, nxt) if span else Gap(nxt, nxt)
        if span is not None:
            self._stats.lost_gaps += 1
        self._advance_pos()
        return span

    def _first_buffered(self) -> int:
        return min(self._buffer)  # only called while the buffer holds something

    def reply_pos(self, pos: Any) -> None:
        """A `subscribed` / `resumed` reply's position: valid once everything received before
        the reply (up to the highest seq seen) has been delivered or given up."""
        if not isinstance(pos, int) or isinstance(pos, bool):
            return
        up_to = max([self.last_seq, *self._buffer])
        self._pos_after.append((up_to, pos))
        self._advance_pos()

    def _advance_pos(self) -> None:
        if not self._pos_after:
            return
        keep: List[Tuple[int, int]] = []
        for seq, pos in self._pos_after:
            if seq > self.last_seq:
                keep.append((seq, pos))
            elif self._pos is None or pos > self._pos:
                self._pos = pos
        self._pos_after = keep

    def _deliver(self, msg: Message) -> None:
        self.last_seq = msg.seq
        # Only what is delivered in order moves the position: a buffered later message must not
        # carry it past the ones still missing (a restore re-sends from the position on).
        if msg.pos is not None and (self._pos is None or msg.pos > self._pos):
            self._pos = msg.pos
        self._advance_pos()
        self._stats.received += 1
        msg.gap = self._lost
        self._lost = None
        self._up.deliver(msg)
