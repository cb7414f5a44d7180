"""OdinError: the one exception type of the client's API."""
from __future__ import annotations

from typing import Any, Dict, Optional


class OdinError(Exception):
    """A refused or failed request.

    ``code`` is the gateway's error code (``bad_request``, ``forbidden``, ``rate_limited``,
    ``too_many_channels``, ``resume_failed``, ``invalid_token``, ...) or one of the client's own:
    ``timeout`` (no reply in time), ``disconnected`` (the connection closed first), ``closed``
    (``close()`` was called), ``not_connected``, ``not_subscribed``, ``unauthorized`` (the
    gateway refused the token with 401), ``refused`` (another HTTP refusal of the upgrade).
    """

    def __init__(self, code: str, message: str, *, id: Optional[int] = None,
                 request: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.id = id
        self.request = request
