"""The differences between the websockets versions this client runs on: Debian 12's 10.4 (the
"legacy" asyncio implementation) up to 14+ (the new asyncio implementation behind
``websockets.connect``). Everything else the client uses is common to both."""
from __future__ import annotations

import inspect
from typing import Any, Dict, List, Optional

import websockets
import websockets.exceptions

#: websockets.connect (a lazy attribute of the package in 10.x, which type checkers cannot see).
CONNECT: Any = getattr(websockets, "connect")
_connect_params = set(inspect.signature(CONNECT).parameters)
# websockets >= 14: `additional_headers`; before: `extra_headers`.
HEADERS_KW = "additional_headers" if "additional_headers" in _connect_params else "extra_headers"


def connect_kwargs(headers: Dict[str, str], open_timeout: float, compression: bool,
                   max_size: Optional[int]) -> Dict[str, Any]:
    kwargs: Dict[str, Any] = {
        "open_timeout": open_timeout,
        # The client keeps the connection alive with `heartbeat` requests (it must, to be heard
        # by the gateway's silence check); the library's own pings would only duplicate them.
        "ping_interval": None,
        "close_timeout": 1,
        "max_size": max_size,
        # permessage-deflate, offered by default; the gateway accepts it unless it runs with
        # WS_COMPRESSION=false.
        "compression": "deflate" if compression else None,
    }
    if headers:
        kwargs[HEADERS_KW] = headers
    return kwargs


def http_status(exc: BaseException) -> Optional[int]:
    """The HTTP status of a refused upgrade (InvalidStatusCode up to 13, InvalidStatus from 14),
    or None for any other failure."""
    status = getattr(exc, "status_code", None)
    if status is None:
        status = getattr(getattr(exc, "response", None), "status_code", None)
    return int(status) if isinstance(status, int) else None


def retry_after(exc: BaseException) -> Optional[float]:
    """The Retry-After header (seconds) of a refused upgrade, if any."""
    headers = getattr(exc, "headers", None)
    if headers is None:
        headers = getattr(getattr(exc, "response", None), "headers", None)
    if headers is None:
        return None
    try:
        value = headers.get("Retry-After")
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def close_of(exc: websockets.exceptions.ConnectionClosed) -> "tuple[int, str]":
    """(code, reason) of the close frame received, or 1006 when none came."""
    rcvd = getattr(exc, "rcvd", None)
    if rcvd is not None:
        return int(rcvd.code), str(rcvd.reason)
    return 1006, ""


def extensions_of(ws: Any) -> List[str]:
    """The names of the extensions the connection negotiated."""
    exts = getattr(ws, "extensions", None)  # legacy implementation
    if exts is None:
        exts = getattr(getattr(ws, "protocol", None), "extensions", None)  # websockets >= 14
    return [str(getattr(e, "name", e)) for e in (exts or [])]


def abort(ws: Any) -> None:
    """Drops the TCP connection at once (no closing handshake): for a connection declared dead."""
    transport = getattr(ws, "transport", None)
    if transport is not None:
        transport.abort()
