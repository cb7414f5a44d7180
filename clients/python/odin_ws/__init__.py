"""odin_ws: asyncio client for the odin-ws WebSocket gateway. See README.md."""
from ._channels import CHANNEL_NAME, is_channel_name
from ._errors import OdinError
from ._sequencer import Gap, Message, Stats
from .client import (MAX_HZ_MAX, MAX_HZ_MIN, ClientState, DeliveryOptions, OdinClient,
                     TokenProvider, token_expiry)

__all__ = [
    "CHANNEL_NAME", "ClientState", "DeliveryOptions", "Gap", "MAX_HZ_MAX", "MAX_HZ_MIN",
    "Message", "OdinClient", "OdinError", "Stats", "TokenProvider", "is_channel_name",
    "token_expiry",
]
__version__ = "0.1.0"
