"""OdinClient: the asyncio client for the odin-ws gateway (PROTOCOL.md v1 and docs/protocol.md).

It behaves like the JavaScript client (web/odin-client.js):

- delivers data messages exactly once and in ``seq`` order: a gap in ``seq`` is filled by a
  ``replay`` request while later messages wait in a reorder buffer; what the gateway no longer
  holds is skipped and reported on the next message (``message.gap``);
- keeps the connection alive with ``heartbeat`` requests and treats a missing ``pong`` as a dead
  connection;
- reconnects after any close it did not ask for (exponential backoff with jitter), sends
  ``resume`` as the first request of the new connection and carries on with the same session and
  numbering; when the gateway answers ``resume_failed`` it adopts the new session and subscribes
  every channel again with ``snapshot`` so that current values arrive at once;
- resumes on whichever instance the load balancer picks (JetStream mode, where messages carry
  ``pos``): its ``resume`` carries ``last_pos`` and the channels, so an instance that never ran
  the session restores it (``resumed`` with ``restored``: the client adopts the new session id);
- remembers the channel set (and each channel's delivery options) and re-applies it after a
  reconnect, including changes made while disconnected;
- authentication (``WS_AUTH=jwt``): ``get_token`` (an async callable returning a JWT) is asked
  for a token when connecting, again shortly before the token expires (sent in-band with an
  ``auth`` request, the connection stays up), and again when the gateway refuses the token with
  401 on a reconnect;
- latest-value subscriptions: ``subscribe(channels, delivery="latest", max_hz=4)``; a message's
  ``conflated`` says how many of its channel the gateway skipped just before it;
- permessage-deflate compression, offered by default.
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import enum
import json
import logging
import random
import ssl as _ssl
import time
from collections import deque
from dataclasses import dataclass, replace
from typing import (Any, AsyncIterator, Awaitable, Callable, Deque, Dict, Iterable, List,
                    Optional, Set, Tuple, Union)

import websockets
import websockets.exceptions

from . import _compat
from ._channels import (NAME_BYTES_PER_REQUEST, ChannelSet, chunk_channels, is_channel_name,
                        normalise_channels)
from ._errors import OdinError
from ._sequencer import Message, Sequencer, Stats

log = logging.getLogger("odin_ws")

#: The range of a subscription's ``max_hz`` (docs/protocol.md, ``data.max_hz``).
MAX_HZ_MIN = 0.1
MAX_HZ_MAX = 1000.0

TokenProvider = Callable[[], Awaitable[str]]
Listener = Callable[[Any], None]


class ClientState(str, enum.Enum):
    """Connection states, in the order a client usually goes through them."""

    IDLE = "idle"  # constructed, connect() not called yet
    CONNECTING = "connecting"  # first connection under way
    RESUMING = "resuming"  # connected again, `resume` sent, waiting for the answer
    OPEN = "open"  # ready: subscribed channels flow
    RECONNECTING = "reconnecting"  # lost the connection; waiting for or opening the next one
    CLOSED = "closed"  # close() was called (or reconnect=False and the connection ended)


@dataclass(frozen=True)
class DeliveryOptions:
    """A subscription's delivery options as given (``delivery`` and/or ``max_hz``)."""

    given_delivery: Optional[str] = None
    max_hz: Optional[float] = None

    @property
    def delivery(self) -> str:
        return "latest" if self.max_hz is not None else (self.given_delivery or "all")

    def wire(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {}
        if self.given_delivery is not None:
            out["delivery"] = self.given_delivery
        if self.max_hz is not None:
            out["max_hz"] = self.max_hz
        return out


def delivery_options(delivery: Optional[str], max_hz: Optional[float]) -> Optional[DeliveryOptions]:
    """None without options; raises OdinError(bad_request) for options the gateway would refuse."""
    if delivery is None and max_hz is None:
        return None
    if delivery is not None and delivery not in ("all", "latest"):
        raise OdinError("bad_request", f'delivery must be "all" or "latest", not {delivery!r}')
    if max_hz is not None and (isinstance(max_hz, bool) or not isinstance(max_hz, (int, float))
                               or not MAX_HZ_MIN <= max_hz <= MAX_HZ_MAX):
        raise OdinError("bad_request", f"max_hz must be a number from {MAX_HZ_MIN} to {MAX_HZ_MAX:g}")
    if max_hz is not None and delivery == "all":
        raise OdinError("bad_request", 'max_hz needs delivery "latest"')
    return DeliveryOptions(delivery, max_hz)


def _group_by_options(channels: Iterable[str], options_of: Callable[[str], Optional[DeliveryOptions]]
                      ) -> List[Tuple[Optional[DeliveryOptions], List[str]]]:
    groups: Dict[Optional[DeliveryOptions], List[str]] = {}
    for c in channels:
        groups.setdefault(options_of(c), []).append(c)
    return list(groups.items())


def token_expiry(token: str) -> Optional[float]:
    """The ``exp`` claim of a JWT (seconds since the epoch), read without verifying it; None
    when the token has none or is not a JWT."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        exp = claims.get("exp") if isinstance(claims, dict) else None
        return float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None
    except (IndexError, ValueError, TypeError):
        return None


class _Unauthorized(Exception):
    pass


@dataclass
class _Pending:
    request: Dict[str, Any]
    future: "asyncio.Future[Dict[str, Any]]"


_END = object()


class OdinClient:
    """An asyncio client of one odin-ws gateway URL (``ws://host:3002/ws``).

    Usage::

        async with OdinClient("ws://127.0.0.1:3002/ws") as client:
            await client.subscribe(["BTCUSD", "ETHUSD"])
            async for msg in client:
                print(msg.seq, msg.channel, msg.data)

    Options (keyword-only; times in seconds):

    - ``get_token``: async callable returning a JWT (``WS_AUTH=jwt``); None: no token.
    - ``token_refresh_margin`` (30): refresh this long before the token's ``exp`` (at most a
      quarter of its remaining life).
    - ``snapshot`` (True): default of ``subscribe()``'s ``snapshot``.
    - ``reconnect`` (True): reconnect after a close the application did not ask for.
    - ``backoff_initial`` (0.25), ``backoff_max`` (15), ``backoff_factor`` (2),
      ``backoff_jitter`` (0.5: the delay is randomly shortened by up to this fraction).
    - ``connect_timeout`` (10): socket open + ``welcome``.
    - ``request_timeout`` (10): a request without a reply by then fails with ``timeout``.
    - ``heartbeat_interval`` (None: half the gateway's ``heartbeat_ms``), ``pong_timeout``
      (None: the gateway's ``heartbeat_ms``; then the connection is declared dead).
    - ``max_buffered`` (10000): reorder buffer bound; beyond it a gap is given up as lost.
    - ``replay_retries`` (3): replays refused with ``rate_limited`` are retried this often.
    - ``iterate`` (True): queue messages for ``async for``; False when only ``on("message")``
      callbacks consume them.
    - ``max_queue`` (10000): when that many messages wait for the iterator, the client stops
      reading the socket until the application catches up (0: unbounded).
    - ``compression`` (True): offer permessage-deflate.
    - ``max_size`` (16 MiB): the largest message accepted.
    - ``headers``: extra HTTP headers for the upgrade.
    - ``ssl``: an ``ssl.SSLContext`` for ``wss://`` (default: the system's trust store).
    """

    def __init__(self, url: str, *, get_token: Optional[TokenProvider] = None,
                 token_refresh_margin: float = 30.0, snapshot: bool = True, reconnect: bool = True,
                 backoff_initial: float = 0.25, backoff_max: float = 15.0, backoff_factor: float = 2.0,
                 backoff_jitter: float = 0.5, connect_timeout: float = 10.0,
                 request_timeout: float = 10.0, heartbeat_interval: Optional[float] = None,
                 pong_timeout: Optional[float] = None, max_buffered: int = 10000,
                 replay_retries: int = 3, iterate: bool = True, max_queue: int = 10000,
                 compression: bool = True, max_size: Optional[int] = 16 * 1024 * 1024,
                 headers: Optional[Dict[str, str]] = None, ssl: Optional[_ssl.SSLContext] = None) -> None:
        self._url = url
        self._get_token = get_token
        self._token_margin = token_refresh_margin
        self._snapshot = snapshot
        self._reconnect = reconnect
        self._backoff = (backoff_initial, backoff_max, backoff_factor, backoff_jitter)
        self._connect_timeout = connect_timeout
        self._request_timeout = request_timeout
        self._heartbeat_interval = heartbeat_interval
        self._pong_timeout = pong_timeout
        self._iterate = iterate
        self._max_queue = max_queue
        self._compression = compression
        self._max_size = max_size
        self._headers = dict(headers or {})
        self._ssl = ssl

        self._state = ClientState.IDLE
        self._listeners: Dict[str, List[Listener]] = {}
        self._welcome: Optional[Dict[str, Any]] = None
        self._welcomed = False
        self._session: Optional[str] = None
        self._disconnected_at = 0.0  # time.monotonic()
        self._attempt = 0
        self._ws: Any = None
        self._extensions: List[str] = []
        self._runner: Optional["asyncio.Task[None]"] = None
        self._tasks: Set["asyncio.Task[Any]"] = set()  # everything else the client runs
        self._conn_tasks: Set["asyncio.Task[Any]"] = set()  # ended with the connection
        self._when_open: List["asyncio.Future[None]"] = []
        self._next_id = 1
        self._pending: Dict[int, _Pending] = {}
        self._resume_id: Optional[int] = None
        self._resume_timer: Optional[asyncio.TimerHandle] = None
        self._resume_channels: Optional[List[str]] = None
        self._resume_options: Optional[Dict[str, Optional[DeliveryOptions]]] = None
        self._ping_sent_at: Optional[float] = None
        self._dead_reason: Optional[str] = None
        self._reader_paused = False
        # Delivery options: what the application asked for per channel, and what the gateway is
        # known to hold for this session. A channel without options is on neither (`all`).
        self._options: Dict[str, DeliveryOptions] = {}
        self._gateway_options: Dict[str, DeliveryOptions] = {}
        self._conflated: Dict[str, int] = {}
        # Token: the one in use, its expiry (epoch seconds), and whether the gateway refused it.
        self._token: Optional[str] = None
        self._token_exp: Optional[float] = None
        self._token_refused = False
        # The iterator's queue.
        self._queue: Deque[Any] = deque()
        self._available = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._end_error: Optional[BaseException] = None

        self._close_frame = (1000, "client closed")
        self._stats = Stats()
        self._channels = ChannelSet()
        self._seq = Sequencer(_SequencerHost(self), self._stats, max_buffered, replay_retries)

    # ---- read-only state -----------------------------------------------------------------

    @property
    def url(self) -> str:
        return self._url

    @property
    def state(self) -> ClientState:
        return self._state

    @property
    def session(self) -> Optional[str]:
        """The session id announced by the gateway (None before the first welcome)."""
        return self._session

    @property
    def position(self) -> Optional[int]:
        """The position in the gateway's stream (JetStream mode): every message of the
        subscribed channels up to it was delivered (or reported lost). None without positions."""
        return self._seq.position

    @property
    def last_seq(self) -> int:
        """The last seq delivered in order; everything before it was delivered or reported lost."""
        return self._seq.last_seq

    @property
    def channels(self) -> List[str]:
        """The channels the application asked for, sorted."""
        return self._channels.wanted

    @property
    def server_info(self) -> Optional[Dict[str, Any]]:
        """The last welcome's data: session, heartbeat_ms, replay_size, resume_ttl_ms."""
        return dict(self._welcome) if self._welcome is not None else None

    @property
    def stats(self) -> Stats:
        return replace(self._stats, buffered=self._seq.buffered)

    @property
    def extensions(self) -> List[str]:
        """The WebSocket extensions the current (or last) connection negotiated."""
        return list(self._extensions)

    @property
    def compressed(self) -> bool:
        """Whether the current (or last) connection negotiated permessage-deflate."""
        return "permessage-deflate" in self._extensions

    @property
    def token_expires_at(self) -> Optional[float]:
        """The expiry (epoch seconds) of the token in use, when known."""
        return self._token_exp

    def is_subscribed(self, channel: str) -> bool:
        return self._channels.wants(channel)

    def options_of(self, channel: str) -> Dict[str, Any]:
        """The delivery options asked for on ``channel``: {"delivery", "max_hz"}."""
        o = self._options.get(channel)
        return {"delivery": o.delivery if o else "all", "max_hz": o.max_hz if o else None}

    def conflated_total(self, channel: str) -> int:
        """Messages of ``channel`` the gateway skipped (sum of ``conflated`` delivered)."""
        return self._conflated.get(channel, 0)

    # ---- events ----------------------------------------------------------------------------

    def on(self, event: str, fn: Listener) -> Callable[[], None]:
        """Calls ``fn(detail)`` for each ``event``; returns a function that removes it.

        Events: state, welcome, message (a Message), subscribed, unsubscribed, gap,
        replay_start, replay_done, disconnected, reconnecting, resumed, resume_failed, pong,
        authenticated, error. Listeners run synchronously and must not block.
        """
        self._listeners.setdefault(event, []).append(fn)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.get(event, []).remove(fn)

        return remove

    def _emit(self, event: str, detail: Any) -> None:
        for fn in list(self._listeners.get(event, ())):
            try:
                fn(detail)
            except Exception:  # an application bug must not break the connection
                log.exception("odin_ws: %s listener failed", event)

    def _set_state(self, state: ClientState) -> None:
        if self._state == state:
            return
        previous = self._state
        self._state = state
        self._emit("state", {"state": state, "previous": previous})

    # ---- lifecycle -------------------------------------------------------------------------

    async def connect(self) -> None:
        """Connects (and keeps reconnecting); returns once the client is open. A client closed
        earlier connects again and resumes its session if the gateway still holds it."""
        if self._state == ClientState.OPEN:
            return
        if self._runner is None or self._runner.done():
            self._end_error = None
            self._close_frame = (1000, "client closed")
            self._queue_reset_end()
            self._runner = asyncio.get_running_loop().create_task(self._run())
            self._runner.add_done_callback(self._runner_done)
        await self._wait_open()

    def _runner_done(self, task: "asyncio.Task[None]") -> None:
        if task.cancelled() or task.exception() is None:
            return
        # A bug, not a network failure: nobody must wait for a connection that will not come.
        exc = task.exception()
        log.error("odin_ws: the connection loop failed", exc_info=exc)
        err = OdinError("closed", f"the connection loop failed: {exc!r}")
        self._set_state(ClientState.CLOSED)
        self._fail_requests(err)
        self._fail_waiters(err)
        self._end_queue(err)

    async def close(self, code: int = 1000, reason: str = "client closed") -> None:
        """Closes the connection for good: no reconnect; outstanding requests fail with
        ``closed``; the iterator ends once it has given out what it holds. Every task and socket
        of the client is gone when it returns. The gateway keeps the session for resume_ttl_ms,
        so a later connect() can still resume it."""
        if self._state != ClientState.CLOSED:
            self._set_state(ClientState.CLOSED)
        self._close_frame = (code, reason)
        if self._ws is not None:
            self._disconnected_at = time.monotonic()
        self._fail_requests(OdinError("closed", "the client was closed"))
        self._fail_waiters(OdinError("closed", "the client was closed"))
        runner, self._runner = self._runner, None
        me = asyncio.current_task()
        if runner is not None and runner is not me:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        await self._cancel(self._tasks)
        await self._cancel(self._conn_tasks)
        self._seq.stop()
        self._end_queue(None)

    def drop(self, code: int = 4100, reason: str = "dropped by the client") -> None:
        """Closes the socket the way a network failure would, without ending the client: it
        reconnects and resumes. For demos and tests."""
        ws = self._ws
        if ws is not None:
            self._spawn(ws.close(code, reason))

    async def __aenter__(self) -> "OdinClient":
        try:
            await self.connect()
        except BaseException:  # cancelled or closed while connecting: leave nothing running
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # ---- the iterator ------------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[Message]:
        if not self._iterate:
            raise RuntimeError("OdinClient(iterate=False) queues no messages: use on('message', ...)")
        return self

    async def __anext__(self) -> Message:
        while True:
            if self._queue:
                item = self._queue.popleft()
                if item is _END:
                    self._queue.appendleft(item)  # every later call ends too
                    if self._end_error is not None:
                        raise self._end_error
                    raise StopAsyncIteration
                if self._max_queue <= 0 or len(self._queue) <= self._max_queue // 2:
                    self._room.set()
                assert isinstance(item, Message)
                return item
            self._available.clear()
            await self._available.wait()

    def _end_queue(self, error: Optional[BaseException]) -> None:
        if not self._queue or self._queue[-1] is not _END:
            self._end_error = error
            self._queue.append(_END)
        self._available.set()
        self._room.set()

    def _queue_reset_end(self) -> None:
        if self._queue and self._queue[-1] is _END:
            self._queue.pop()

    # ---- channels ----------------------------------------------------------------------------

    async def subscribe(self, channels: Union[str, Iterable[str]], *, snapshot: Optional[bool] = None,
                        delivery: Optional[str] = None, max_hz: Optional[float] = None) -> List[str]:
        """Subscribes; the client remembers the channels and subscribes again after reconnects.
        With ``snapshot`` (default: the client's) the gateway first sends each channel's latest
        message. ``delivery`` ("all" or "latest") and ``max_hz`` (0.1 to 1000, implies "latest")
        choose how the channels are delivered; they apply at once to channels already
        subscribed and are kept per channel. Returns the channels the gateway confirmed; raises
        OdinError (``too_many_channels``, ``forbidden``, ``bad_request``...; those channels are
        then forgotten). While disconnected it returns once the client is open again and the
        channels are subscribed."""
        names = normalise_channels(channels)
        invalid = next((c for c in names if not is_channel_name(c)), None)
        if invalid is not None or not names:
            raise OdinError("bad_request", "no channels" if invalid is None else f"invalid channel name: {invalid}")
        options = delivery_options(delivery, max_hz)
        if self._state == ClientState.CLOSED:
            raise OdinError("closed", "the client was closed")
        self._channels.want(names)
        if options is not None:
            for c in names:
                self._options[c] = options
        if self._state == ClientState.IDLE:
            return names  # recorded: connect() subscribes them
        if self._state != ClientState.OPEN:
            await self._wait_open()
            return self._confirmed_of(names)
        try:
            return await self._send_subscribe(names, self._snapshot if snapshot is None else snapshot, options)
        except OdinError as e:
            # A connection lost before the reply is not a refusal: the channels stay wanted and
            # are subscribed again once the client is open.
            if e.code == "disconnected" and self._state != ClientState.CLOSED:
                await self._wait_open()
                return self._confirmed_of(names)
            raise

    async def unsubscribe(self, channels: Union[str, Iterable[str]]) -> List[str]:
        """Unsubscribes. Messages already on their way may still arrive (they keep their seq)."""
        names = normalise_channels(channels)
        self._channels.unwant(names)
        for c in names:
            self._options.pop(c, None)
            self._gateway_options.pop(c, None)
            self._conflated.pop(c, None)
        if self._state == ClientState.IDLE:
            return names
        if self._state != ClientState.OPEN:
            await self._wait_open()
            return names
        return await self._send_unsubscribe(names)

    async def ping(self) -> float:
        """Sends a heartbeat; returns the round trip in seconds."""
        start = time.monotonic()
        await self.request("heartbeat")
        rtt = time.monotonic() - start
        self._stats.rtt = rtt
        self._emit("pong", {"rtt": rtt})
        return rtt

    async def refresh_token(self) -> Optional[float]:
        """Asks ``get_token`` for a token and sends it in-band (``auth``); the connection stays
        up. Returns the new expiry (epoch seconds) or None. Raises OdinError on refusal."""
        if self._get_token is None:
            raise OdinError("bad_request", "no get_token callback")
        token = await self._fetch_token()
        reply = await self.request("auth", {"token": token})
        data = reply.get("data") or {}
        expires_at = data.get("expires_at")
        self._token_exp = expires_at / 1000 if isinstance(expires_at, (int, float)) else None
        self._stats.token_refreshes += 1
        self._emit("authenticated", {"expires_at": self._token_exp})
        return self._token_exp

    async def request(self, type: str, data: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """Sends any request and returns its reply (the whole control message); raises
        OdinError when the gateway answers ``error``, on timeout, or when the connection closes
        first."""
        ws = self._ws
        if ws is None or self._state in (ClientState.CLOSED, ClientState.IDLE):
            raise OdinError("not_connected", "the client is not connected")
        rid = self._next_id
        self._next_id += 1
        req: Dict[str, Any] = {"type": type, "id": rid} if data is None else {"type": type, "data": data, "id": rid}
        fut: "asyncio.Future[Dict[str, Any]]" = asyncio.get_running_loop().create_future()
        self._pending[rid] = _Pending(req, fut)
        try:
            await ws.send(json.dumps(req))
            while True:
                try:
                    return await asyncio.wait_for(asyncio.shield(fut), self._request_timeout)
                except asyncio.TimeoutError:
                    # While the client does not read (the application is behind), the reply
                    # cannot have been read either: the time does not count.
                    if not (self._reader_paused and self._ws is ws):
                        raise
        except asyncio.TimeoutError:
            raise OdinError("timeout", f"no reply to {type} within {self._request_timeout:g} s",
                            id=rid, request=req) from None
        except websockets.exceptions.ConnectionClosed:
            raise OdinError("disconnected", "connection closed") from None
        finally:
            self._pending.pop(rid, None)

    # ---- connection loop ---------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            if self._state != ClientState.RECONNECTING:
                self._set_state(ClientState.CONNECTING)
            code, reason = 1006, ""
            at_once = False
            hint: Optional[float] = None
            try:
                ws = await self._open()
            except asyncio.CancelledError:
                raise
            except _Unauthorized as e:
                code, reason = 1006, "401 token refused"
                at_once = e.args[-1] == "cached"
            except Exception as e:
                status = _compat.http_status(e)
                code, reason = 1006, f"HTTP {status}" if status else (str(e) or type(e).__name__)
                hint = _compat.retry_after(e)
                if status is not None:
                    self._emit("error", {"code": "refused", "message": reason, "id": None, "request": None})
            else:
                try:
                    code, reason = await self._serve(ws)
                finally:
                    await self._teardown(ws)
            self._after_disconnect(code)
            if self._state == ClientState.CLOSED:
                return
            if not self._reconnect:
                err = OdinError("disconnected", f"connection closed ({code})")
                self._fail_waiters(err)
                self._set_state(ClientState.CLOSED)
                self._emit("disconnected", {"code": code, "reason": reason})
                self._end_queue(err)
                self._runner = None
                return
            self._set_state(ClientState.RECONNECTING)
            self._emit("disconnected", {"code": code, "reason": reason})
            delay = 0.0 if at_once else self._next_delay(hint)
            self._emit("reconnecting", {"attempt": self._attempt, "delay": delay})
            await asyncio.sleep(delay)

    def _next_delay(self, hint: Optional[float]) -> float:
        initial, maximum, factor, jitter = self._backoff
        base = min(maximum, initial * factor ** self._attempt)
        self._attempt += 1
        delay = base * (1 - jitter * random.random())
        return max(delay, hint) if hint is not None else delay

    async def _open(self) -> Any:
        headers = dict(self._headers)
        fetched = False
        if self._get_token is not None:
            margin = min(self._token_margin, 5.0)
            if (self._token is None or self._token_refused
                    or (self._token_exp is not None and self._token_exp - time.time() < margin)):
                try:
                    await self._fetch_token()
                except Exception as e:
                    self._emit("error", {"code": "token_error", "message": f"get_token failed: {e!r}",
                                         "id": None, "request": None})
                    raise
                fetched = True
            assert self._token is not None
            headers["Authorization"] = "Bearer " + self._token
        kwargs = _compat.connect_kwargs(headers, self._connect_timeout, self._compression, self._max_size)
        if self._ssl is not None:
            kwargs["ssl"] = self._ssl  # wss:// with a CA of one's own; without it, the system's

        async def connect() -> Any:
            return await _compat.CONNECT(self._url, **kwargs)

        try:
            ws = await asyncio.wait_for(connect(), self._connect_timeout)
        except Exception as e:
            if _compat.http_status(e) == 401 and self._get_token is not None:
                self._token_refused = True
                self._emit("error", {"code": "unauthorized", "message": "the gateway refused the token (401)",
                                     "id": None, "request": None})
                # A cached token: a fresh one may do at once. A fresh one: back off.
                raise _Unauthorized("token refused", "fresh" if fetched else "cached") from e
            raise
        self._extensions = _compat.extensions_of(ws)
        return ws

    async def _fetch_token(self) -> str:
        assert self._get_token is not None
        token = await self._get_token()
        if not isinstance(token, str) or not token:
            raise OdinError("invalid_token", "get_token returned no token")
        self._token = token
        self._token_exp = token_expiry(token)
        self._token_refused = False
        return token

    async def _serve(self, ws: Any) -> Tuple[int, str]:
        """Reads the connection until it ends; returns its close code and reason."""
        self._ws = ws
        self._ping_sent_at = None
        self._dead_reason = None
        self._welcome = None
        self._resume_id = None
        try:
            try:
                text = await asyncio.wait_for(ws.recv(), self._connect_timeout)
            except asyncio.TimeoutError:
                return 1006, "no welcome in time"
            await self._on_frame(text)
            while True:
                text = await ws.recv()
                self._ping_sent_at = None  # anything at all proves the connection alive
                await self._on_frame(text)
                if not self._room.is_set():
                    self._reader_paused = True
                    try:
                        await self._room.wait()
                    finally:
                        self._reader_paused = False
                        self._ping_sent_at = None
        except websockets.exceptions.ConnectionClosed as e:
            dead = self._why_dead()
            return (1006, dead) if dead is not None else _compat.close_of(e)

    async def _teardown(self, ws: Any) -> None:
        self._ws = None
        if self._resume_timer is not None:
            self._resume_timer.cancel()
            self._resume_timer = None
        await self._cancel(self._conn_tasks)
        code, reason = getattr(self, "_close_frame", (1000, "client closed"))
        try:
            await ws.close(code, reason)  # bounded by close_timeout
        except asyncio.CancelledError:
            _compat.abort(ws)  # cancelled again: no closing handshake then
            raise
        except Exception:
            _compat.abort(ws)

    def _after_disconnect(self, code: int) -> None:
        self._seq.stop()
        self._disconnected_at = time.monotonic()
        self._fail_requests(OdinError("disconnected", f"connection closed ({code})"))

    def _why_dead(self) -> Optional[str]:
        return self._dead_reason  # (read after awaits: what _declare_dead set meanwhile)

    def _pinged_at(self) -> Optional[float]:
        return self._ping_sent_at

    def _declare_dead(self, ws: Any, why: str) -> None:
        """Gives up on a socket that is still open on paper (no welcome, no pong): a half-open
        TCP connection may never deliver a close."""
        if ws is not self._ws or ws is None:
            return
        self._dead_reason = why
        _compat.abort(ws)

    async def _heartbeat(self, ws: Any, server_ms: Any) -> None:
        server = server_ms / 1000 if isinstance(server_ms, (int, float)) and server_ms > 0 else 30.0
        interval = self._heartbeat_interval or max(0.5, server / 2)
        timeout = self._pong_timeout or max(1.0, server)
        self._ping_sent_at = None
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            pinged = self._pinged_at()
            if pinged is not None and now - pinged > timeout and not self._reader_paused:
                self._declare_dead(ws, "no pong")
                return
            if pinged is None:
                self._ping_sent_at = now
            self._spawn(self._quiet(self.ping()), conn=True)

    async def _token_refresher(self) -> None:
        """Refreshes the token in-band shortly before it expires, for as long as the
        connection lasts."""
        while True:
            exp = self._token_exp
            if exp is None:
                return
            remaining = exp - time.time()
            await asyncio.sleep(max(0.5, remaining - min(self._token_margin, remaining / 4)))
            try:
                await self.refresh_token()
            except OdinError as e:
                self._emit("error", {"code": e.code, "message": e.message, "id": e.id, "request": e.request})
                if e.code in ("bad_request", "disconnected", "not_connected", "closed"):
                    return  # authentication off, or the connection is gone
                await asyncio.sleep(min(5.0, max(0.5, (exp - time.time()) / 4)))
            except Exception as e:  # get_token failed
                self._emit("error", {"code": "token_error", "message": str(e), "id": None, "request": None})
                await asyncio.sleep(min(5.0, max(0.5, (exp - time.time()) / 4)))

    # ---- inbound -----------------------------------------------------------------------------

    async def _on_frame(self, text: Any) -> None:
        try:
            msg = json.loads(text)
        except (TypeError, ValueError):
            self._emit("error", {"code": "bad_frame", "message": "a frame that is not JSON", "id": None, "request": None})
            return
        if not isinstance(msg, dict):
            return
        seq = msg.get("seq")
        if isinstance(seq, int) and not isinstance(seq, bool):
            self._seq.on_data(Message.from_envelope(msg))
            return
        kind = msg.get("type")
        raw_data = msg.get("data")
        data: Dict[str, Any] = raw_data if isinstance(raw_data, dict) else {}
        if kind == "welcome":
            await self._on_welcome(data)
        elif kind == "resumed":
            self._on_resumed(msg, data)
        elif kind == "subscribed":
            self._on_subscribed(msg, data)
        elif kind == "unsubscribed":
            self._on_unsubscribed(msg, data)
        elif kind == "replay_done":
            self._settle(msg)
            self._seq.on_replay_done(data)
        elif kind in ("pong", "authenticated"):
            self._settle(msg)
        elif kind == "error":
            self._on_error(msg, data)
        # else: a message type from a later protocol version

    async def _on_welcome(self, data: Dict[str, Any]) -> None:
        ws = self._ws
        self._welcome = data
        if self._welcomed:
            self._stats.reconnects += 1
        self._welcomed = True
        self._emit("welcome", dict(data))
        self._spawn(self._heartbeat(ws, data.get("heartbeat_ms")), conn=True)
        if self._get_token is not None:
            self._spawn(self._token_refresher(), conn=True)
        ttl_ms = data.get("resume_ttl_ms")
        ttl = ttl_ms / 1000 if isinstance(ttl_ms, (int, float)) else float("inf")
        can_resume = self._session is not None and time.monotonic() - self._disconnected_at < ttl
        if not can_resume:
            self._fresh_session(data.get("session"))
            self._become_open()
            return
        # `resume` must be the connection's first request.
        self._set_state(ClientState.RESUMING)
        rid = self._next_id
        self._next_id += 1
        self._resume_id = rid
        self._arm_resume_deadline(ws)
        await ws.send(json.dumps({"type": "resume", "data": self._resume_data(), "id": rid}))

    def _resume_data(self) -> Dict[str, Any]:
        """With a position (JetStream mode) the resume also names last_pos and the channels the
        session holds, so that an instance that never ran the session can restore it."""
        data: Dict[str, Any] = {"session": self._session, "last_seq": self._seq.last_seq}
        self._resume_channels = None
        self._resume_options = None
        channels = self._channels.held()
        if (self._seq.position is None or not channels
                or len(json.dumps(channels)) > NAME_BYTES_PER_REQUEST):
            return data
        options: Dict[str, Dict[str, Any]] = {}
        for c in channels:
            o = self._options.get(c)
            if o is not None and o.delivery == "latest":
                options[c] = {"delivery": "latest"} if o.max_hz is None else {"delivery": "latest", "max_hz": o.max_hz}
        if options and len(json.dumps({"channels": channels, "options": options})) > NAME_BYTES_PER_REQUEST:
            return data
        data["last_pos"] = self._seq.position
        data["channels"] = channels
        if options:
            data["options"] = options
        self._resume_channels = channels
        self._resume_options = {c: self._options.get(c) for c in channels}
        self._seq.drop_buffer()
        return data

    def _arm_resume_deadline(self, ws: Any) -> None:
        def expired() -> None:
            if self._reader_paused and ws is self._ws:
                self._arm_resume_deadline(ws)  # the answer may wait unread behind the application
            else:
                self._declare_dead(ws, "no answer to resume")

        self._resume_timer = asyncio.get_running_loop().call_later(self._request_timeout, expired)

    def _end_resume(self) -> None:
        self._resume_id = None
        if self._resume_timer is not None:
            self._resume_timer.cancel()
            self._resume_timer = None

    def _on_resumed(self, msg: Dict[str, Any], data: Dict[str, Any]) -> None:
        self._settle(msg)
        self._end_resume()
        self._stats.resumes += 1
        previous = self._session
        restored = data.get("restored") is True and self._resume_channels is not None
        if restored and self._resume_channels is not None and self._resume_options is not None:
            # Another instance took the session over: the new id from now on, subscribed to
            # exactly the channels the request named, with the options it named.
            self._channels.restored(self._resume_channels)
            self._seq.restored()
            self._gateway_options = {c: o for c, o in self._resume_options.items() if o is not None}
        self._resume_channels = None
        self._resume_options = None
        session = data.get("session")
        if isinstance(session, str) and session:
            self._session = session
        self._seq.reply_pos(data.get("pos"))
        pos = data.get("pos")
        self._emit("resumed", {"session": self._session, "replayed": data.get("replayed"),
                               "restored": restored, "previous_session": previous,
                               "pos": pos if isinstance(pos, int) else None})
        self._become_open()
        # Everything after last_seq was re-sent: what the buffer holds is a duplicate or later,
        # and any gap left is new.
        self._seq.flush()

    def _on_resume_failed(self, data: Dict[str, Any]) -> None:
        old = self._session
        self._end_resume()
        self._stats.resume_failures += 1
        self._fresh_session((self._welcome or {}).get("session"))
        self._emit("resume_failed", {"session": old, "new_session": self._session, "message": data.get("message")})
        self._become_open()

    def _fresh_session(self, session: Any) -> None:
        self._session = session if isinstance(session, str) else None
        self._resume_channels = None
        self._resume_options = None
        self._seq.restart()
        self._channels.forget()
        self._gateway_options.clear()

    def _become_open(self) -> None:
        """Brings the gateway's channel set in line with the application's, then wakes up
        connect() and the (un)subscribes made while disconnected."""
        self._attempt = 0
        self._set_state(ClientState.OPEN)
        unsubscribe = self._channels.to_unsubscribe()
        subscribe = self._channels.to_subscribe()
        pending: List[Awaitable[Any]] = []
        if unsubscribe:
            pending.append(self._send_unsubscribe(unsubscribe))
        for options, group in _group_by_options(subscribe, self._options.get):
            pending.append(self._send_subscribe(group, True, options))
        stale = [c for c in self._channels.confirmed_of(self._channels.wanted)
                 if c in self._options and self._options.get(c) != self._gateway_options.get(c)]
        for options, group in _group_by_options(stale, self._options.get):
            pending.append(self._send_subscribe(group, False, options))
        waiters, self._when_open = self._when_open, []

        async def settle() -> None:
            await asyncio.gather(*pending, return_exceptions=True)
            for w in waiters:
                if not w.done():
                    w.set_result(None)

        self._spawn(settle())

    def _on_subscribed(self, msg: Dict[str, Any], data: Dict[str, Any]) -> None:
        channels = [c for c in data.get("channels", []) if isinstance(c, str)]
        self._channels.subscribed(channels)
        self._seq.reply_pos(data.get("pos"))
        self._settle(msg)
        detail: Dict[str, Any] = {"channels": channels}
        if isinstance(data.get("delivery"), str):
            detail["delivery"] = data["delivery"]
        if isinstance(data.get("max_hz"), (int, float)):
            detail["max_hz"] = data["max_hz"]
        self._emit("subscribed", detail)

    def _on_unsubscribed(self, msg: Dict[str, Any], data: Dict[str, Any]) -> None:
        channels = [c for c in data.get("channels", []) if isinstance(c, str)]
        self._channels.unsubscribed(channels)
        forced = "id" not in msg
        if forced:
            # The gateway dropped them (a refreshed token no longer allows them): asking again
            # after a reconnect would only be refused.
            self._channels.unwant(channels)
            for c in channels:
                self._options.pop(c, None)
                self._gateway_options.pop(c, None)
        self._settle(msg)
        self._emit("unsubscribed", {"channels": channels, "forced": forced})

    def _on_error(self, msg: Dict[str, Any], data: Dict[str, Any]) -> None:
        code = str(data.get("code", ""))
        message = str(data.get("message", ""))
        rid = msg.get("id")
        # Any refusal of the resume (resume_failed, or e.g. rate_limited) leaves this connection
        # on the fresh session its welcome announced.
        if self._resume_id is not None and (rid == self._resume_id or (rid is None and code == "resume_failed")):
            self._on_resume_failed(data)
            return
        request: Optional[Dict[str, Any]] = None
        entry = self._pending.pop(rid, None) if isinstance(rid, int) else None
        if entry is not None:
            request = entry.request
            if not entry.future.done():
                entry.future.set_exception(OdinError(code, message, id=rid, request=request))
            if request.get("type") == "subscribe":
                self._channels.refused(request.get("data", {}).get("channels", []))
            elif request.get("type") == "replay":
                self._seq.on_replay_refused(code)
        self._emit("error", {"code": code, "message": message, "id": rid, "request": request})

    def _settle(self, msg: Dict[str, Any]) -> None:
        rid = msg.get("id")
        entry = self._pending.pop(rid, None) if isinstance(rid, int) else None
        if entry is not None and not entry.future.done():
            entry.future.set_result(msg)

    # ---- the sequencer's host (through _SequencerHost) --------------------------------------

    def _deliver(self, message: Message) -> None:
        if message.conflated:
            self._stats.conflated += message.conflated
            self._conflated[message.channel] = self._conflated.get(message.channel, 0) + message.conflated
        self._emit("message", message)
        if self._iterate:
            self._queue.append(message)
            self._available.set()
            if self._max_queue > 0 and len(self._queue) >= self._max_queue:
                self._room.clear()

    def _replay(self, start: int, end: int, on_timeout: Callable[[], None]) -> None:
        async def run() -> None:
            try:
                await self.request("replay", {"from": start, "to": end})
            except OdinError as e:
                # Refusals are handled in _on_error; a timeout means the replay is not coming.
                if e.code == "timeout":
                    on_timeout()

        self._spawn(run(), conn=True)

    # ---- requests ------------------------------------------------------------------------

    async def _send_subscribe(self, channels: List[str], snapshot: bool,
                              options: Optional[DeliveryOptions] = None) -> List[str]:
        self._channels.asked(channels)

        async def one(part: List[str]) -> List[str]:
            data: Dict[str, Any] = {"channels": part, "snapshot": bool(snapshot)}
            if options is not None:
                data.update(options.wire())
            try:
                reply = await self.request("subscribe", data)
            except OdinError as e:
                # Refused: the gateway kept what it had, and so does the client (unless asked
                # again meanwhile). A lost connection is not a refusal.
                if options is not None and e.request is not None and e.code != "timeout":
                    for c in part:
                        if self._options.get(c) != options:
                            continue
                        held = self._gateway_options.get(c)
                        if held is not None and self._channels.wants(c):
                            self._options[c] = held
                        else:
                            self._options.pop(c, None)
                raise
            if options is not None:
                for c in part:
                    self._gateway_options[c] = options
            return [c for c in (reply.get("data") or {}).get("channels", []) if isinstance(c, str)]

        parts = await asyncio.gather(*(one(p) for p in chunk_channels(channels)))
        return [c for part in parts for c in part]

    async def _send_unsubscribe(self, channels: List[str]) -> List[str]:
        out: List[str] = []
        for part in chunk_channels(channels):
            reply = await self.request("unsubscribe", {"channels": part})
            out.extend(c for c in (reply.get("data") or {}).get("channels", []) if isinstance(c, str))
        return out

    async def _wait_open(self) -> None:
        if self._state == ClientState.OPEN:
            return
        if self._runner is None or self._runner.done():
            raise OdinError("closed" if self._state == ClientState.CLOSED else "not_connected",
                            "the client is not connected")
        fut: "asyncio.Future[None]" = asyncio.get_running_loop().create_future()
        self._when_open.append(fut)
        try:
            await fut
        finally:
            with contextlib.suppress(ValueError):
                self._when_open.remove(fut)

    def _fail_waiters(self, error: OdinError) -> None:
        waiters, self._when_open = self._when_open, []
        for w in waiters:
            if not w.done():
                w.set_exception(error)

    def _fail_requests(self, error: OdinError) -> None:
        pending, self._pending = self._pending, {}
        for entry in pending.values():
            if not entry.future.done():
                entry.future.set_exception(error)

    def _confirmed_of(self, names: List[str]) -> List[str]:
        ok = self._channels.confirmed_of(names)
        if not ok and names:
            raise OdinError("not_subscribed", "not subscribed: " + ",".join(names))
        return ok

    # ---- tasks -----------------------------------------------------------------------------

    def _spawn(self, coro: Awaitable[Any], conn: bool = False) -> None:
        group = self._conn_tasks if conn else self._tasks
        task = asyncio.ensure_future(coro)
        group.add(task)

        def done(t: "asyncio.Task[Any]") -> None:
            group.discard(t)
            if not t.cancelled() and t.exception() is not None:
                exc = t.exception()
                if not isinstance(exc, (OdinError, websockets.exceptions.ConnectionClosed)):
                    log.error("odin_ws: background task failed", exc_info=exc)

        task.add_done_callback(done)

    @staticmethod
    async def _quiet(aw: Awaitable[Any]) -> None:
        with contextlib.suppress(OdinError, websockets.exceptions.ConnectionClosed):
            await aw

    @staticmethod
    async def _cancel(tasks: Set["asyncio.Task[Any]"]) -> None:
        me = asyncio.current_task()
        victims = [t for t in tasks if t is not me]
        for t in victims:
            t.cancel()
        if victims:
            await asyncio.gather(*victims, return_exceptions=True)


class _SequencerHost:
    """The client as the sequencer sees it (kept off the client's public interface)."""

    def __init__(self, client: OdinClient) -> None:
        self._c = client

    def deliver(self, message: Message) -> None:
        self._c._deliver(message)

    def emit(self, event: str, detail: Dict[str, Any]) -> None:
        self._c._emit(event, detail)

    def can_replay(self) -> bool:
        return self._c._state == ClientState.OPEN and self._c._ws is not None

    def connected(self) -> bool:
        return self._c._ws is not None

    def replay(self, start: int, end: int, on_timeout: Callable[[], None]) -> None:
        self._c._replay(start, end, on_timeout)

    def call_later(self, delay: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        return asyncio.get_running_loop().call_later(delay, callback)
