"""The interface a client needs from a transport: send messages, deliver what arrives.

A transport carries every channel of one kernel (ZeroMQ sockets, or one websocket to a
Jupyter Server). The clients, their routing and execution code are written against this
interface only, so a new transport needs nothing else changed.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable
from typing import Any

import anyio

from ..errors import RemoteProtocolError
from ..messages import Content, Message
from ..protocol import Session

__all__ = ["AsyncTransport", "Deliver", "OutputGap", "RequestLost", "Transport"]


class OutputGap:
    """Delivered when messages may have been lost on the way (a reconnection the server could
    not replay): the requests pending at that moment learn that their output may be
    incomplete."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


class RequestLost:
    """Delivered when a request is known never to have reached the kernel: it fails with
    ``error``."""

    __slots__ = ("error", "msg_id")

    def __init__(self, msg_id: str, error: BaseException) -> None:
        self.msg_id = msg_id
        self.error = error


#: Called with each message the transport receives, its ``channel`` set; with the error for
#: one it could not read that answers a request (``RemoteProtocolError.parent_id``); or with
#: an OutputGap or a RequestLost.
Deliver = Callable[[Message[Content] | RemoteProtocolError | OutputGap | RequestLost], None]


class AsyncTransport(abc.ABC):
    """A transport for async code (asyncio or trio)."""

    session: Session

    @abc.abstractmethod
    async def connect(self) -> None:
        """Open the connection(s); messages may be sent afterwards."""

    @abc.abstractmethod
    async def send(self, message: Message[Any]) -> None:
        """Send a message on its ``channel``."""

    @abc.abstractmethod
    def send_nowait(self, message: Message[Any]) -> bool:
        """Send without waiting if possible; False when the message was not sent."""

    @abc.abstractmethod
    async def receive_forever(self, deliver: Deliver) -> None:
        """Read every channel and deliver each message, until cancelled.

        A malformed message is dropped (and logged); a broken connection raises
        TransportError.
        """

    def fail_after_delivery(
        self, error: BaseException, fail: Callable[[BaseException], None]
    ) -> None:
        """Call ``fail(error)`` once every message received so far has been delivered: before
        requests fail because the kernel died, all it sent first reaches its callers first.
        A transport that holds nothing fails at once."""
        fail(error)

    async def watch(self, dead: Callable[[BaseException], None], alive: Callable[[], None]) -> None:
        """Tell when the kernel stops (``dead``) or resumes (``alive``) answering, until
        cancelled. Transports without a liveness signal of their own just wait."""
        await anyio.sleep_forever()

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Close the connection(s)."""


class Transport(abc.ABC):
    """A transport for blocking code: it reads in a background thread of its own (or, while
    a caller waits, maybe in the caller's thread: see ``wait``)."""

    session: Session

    @abc.abstractmethod
    def start(
        self,
        deliver: Deliver,
        dead: Callable[[BaseException], None],
        alive: Callable[[], None],
    ) -> None:
        """Connect and start delivering messages (from the transport's thread)."""

    @abc.abstractmethod
    def send(self, message: Message[Any]) -> None:
        """Send a message on its ``channel``; callable from any thread."""

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        """Block until ``event`` is set (True) or ``timeout`` passes (False).

        A transport may read and deliver in the caller's thread meanwhile, sparing a thread
        switch per reply; this one leaves it to its own thread.
        """
        return event.wait(timeout)

    def fail_after_delivery(
        self, error: BaseException, fail: Callable[[BaseException], None]
    ) -> None:
        """Call ``fail(error)`` once every message received so far has been delivered (from
        the reading thread): before requests fail because the kernel died, all it sent first
        reaches its callers first. A transport that holds nothing fails at once."""
        fail(error)

    def wakeup(self) -> None:  # noqa: B027 - optional, and nothing to do by default
        """An event a caller waits on was set outside the transport's deliveries."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop the thread and close the connection(s)."""
