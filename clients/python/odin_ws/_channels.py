"""Channel names and the client's three views of its channels (web/odin-channels.js)."""
from __future__ import annotations

import re
from typing import Iterable, List, Set, Union

#: A channel name (docs/protocol.md): 1 to 128 characters of ``A-Z a-z 0-9 _ - . :``.
CHANNEL_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,128}")

#: Bytes of channel names per (un)subscribe request, so that a large set is split into requests
#: under the gateway's default WS_MAX_MESSAGE_BYTES (4096; a bigger frame closes with 1009).
NAME_BYTES_PER_REQUEST = 3000


def is_channel_name(name: object) -> bool:
    return isinstance(name, str) and CHANNEL_NAME.fullmatch(name) is not None


def chunk_channels(channels: List[str]) -> List[List[str]]:
    """Splits a channel list into runs whose names add up to at most NAME_BYTES_PER_REQUEST."""
    out: List[List[str]] = [[]]
    size = 0
    for c in channels:
        n = len(c) + 3  # quotes and comma; names are ASCII
        if size + n > NAME_BYTES_PER_REQUEST and out[-1]:
            out.append([])
            size = 0
        out[-1].append(c)
        size += n
    return out


def normalise_channels(channels: Union[str, Iterable[str]]) -> List[str]:
    """One channel or several, as a list of distinct strings in the order given."""
    items = [channels] if isinstance(channels, str) else list(channels)
    return list(dict.fromkeys(str(c) for c in items))


class ChannelSet:
    """What the application wants, what the gateway confirmed for this session, and what the
    gateway may hold (confirmed, or a subscribe sent without its reply yet)."""

    def __init__(self) -> None:
        self._desired: Set[str] = set()
        self._confirmed: Set[str] = set()
        self._maybe: Set[str] = set()

    @property
    def wanted(self) -> List[str]:
        return sorted(self._desired)

    def wants(self, channel: str) -> bool:
        return channel in self._desired

    def want(self, channels: Iterable[str]) -> None:
        self._desired.update(channels)

    def unwant(self, channels: Iterable[str]) -> None:
        self._desired.difference_update(channels)

    def asked(self, channels: Iterable[str]) -> None:
        self._maybe.update(channels)

    def subscribed(self, channels: Iterable[str]) -> None:
        self._confirmed.update(channels)

    def unsubscribed(self, channels: Iterable[str]) -> None:
        for c in channels:
            self._confirmed.discard(c)
            self._maybe.discard(c)

    def refused(self, channels: Iterable[str]) -> None:
        """A refused subscribe changed nothing on the gateway: forget it, or every reconnect
        would ask again."""
        for c in channels:
            if c not in self._confirmed:
                self._desired.discard(c)
                self._maybe.discard(c)

    def forget(self) -> None:
        """A fresh session holds nothing."""
        self._confirmed.clear()
        self._maybe.clear()

    def restored(self, channels: Iterable[str]) -> None:
        """A session restored elsewhere holds exactly the channels its resume named."""
        self._confirmed = set(channels)
        self._maybe = set(self._confirmed)

    def confirmed_of(self, channels: Iterable[str]) -> List[str]:
        return [c for c in channels if c in self._confirmed]

    def held(self) -> List[str]:
        """For a resume: confirmed and still wanted, sorted."""
        return sorted(self._confirmed & self._desired)

    def to_unsubscribe(self) -> List[str]:
        return sorted(self._maybe - self._desired)

    def to_subscribe(self) -> List[str]:
        return sorted(self._desired - self._confirmed)
