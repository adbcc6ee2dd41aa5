"""The blocking transport: every channel of one kernel for plain threads. Its I/O thread
(iothread.py) owns the sockets, and whoever waits for a reply reads them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ...errors import TransportError
from ...messages import Message
from ..base import Deliver, Transport
from .channels import ZmqSettings
from .iothread import IOThread

__all__ = ["ZmqTransport"]


class ZmqTransport(ZmqSettings, Transport):
    """All channels of a kernel over ZeroMQ, for blocking code.

    The sockets are read continuously, so the kernel never outruns the client: by a thread of
    the transport while nobody waits, and by the waiting caller itself while one does
    (``wait``). A reply then reaches the thread that asked for it without a thread switch,
    and a flood of output is taken off the wire by the thread that collects it. Sends go
    straight out from the caller's thread. The transport's thread also beats the heart.
    """

    _thread: IOThread | None = None

    def start(
        self,
        deliver: Deliver,
        dead: Callable[[BaseException], None],
        alive: Callable[[], None],
    ) -> None:
        """Connect and start the transport's thread; returns once the sockets are connected."""
        if self._thread is not None:
            return
        thread = IOThread(self, deliver, dead, alive)
        thread.start()
        thread.started.wait()
        if thread.error is not None:
            raise thread.error
        self._thread = thread

    def send(self, message: Message[Any]) -> None:
        """Sign and send a message on its channel, from the caller's thread."""
        thread = self._thread
        if thread is None:
            raise TransportError("the transport is not started")
        thread.send(message.channel or "shell", self.session.serialize(message))

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        """Wait for ``event``, reading the sockets meanwhile; False on timeout."""
        thread = self._thread
        if thread is None:
            return event.wait(timeout)
        return thread.wait(event, timeout)

    def fail_after_delivery(
        self, error: BaseException, fail: Callable[[BaseException], None]
    ) -> None:
        """Call ``fail(error)`` from the reader, once it has delivered all the sockets hold."""
        thread = self._thread
        if thread is None:
            fail(error)
        else:
            thread.fail_after_delivery(error, fail)

    def wakeup(self) -> None:
        """Make a waiting caller look at its event again (it was set from elsewhere)."""
        thread = self._thread
        if thread is not None:
            thread.wake_reader()

    def close(self) -> None:
        """Stop the thread, which closes the sockets."""
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.stop()
            thread.join(5)
