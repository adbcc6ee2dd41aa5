"""Websockets, the wire of kernels behind a Jupyter Server or gateway: one websocket carries
every channel of a kernel.

- ``connection``: one kernel websocket without I/O (handshake, frames, the server's own
  status words) and the rules of reconnecting;
- ``asynchronous`` and ``blocking``: the two transports driving it, for async code (tasks)
  and for threads (a reader thread and callers that send).
"""

from .asynchronous import WebsocketAsyncTransport
from .blocking import WebsocketTransport
from .connection import Endpoint, KernelState, KernelWebsocket

__all__ = [
    "Endpoint",
    "KernelState",
    "KernelWebsocket",
    "WebsocketAsyncTransport",
    "WebsocketTransport",
]
