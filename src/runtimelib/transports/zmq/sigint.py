"""Holding Ctrl-C back while the blocking transport's reader takes a batch of messages off
the sockets and delivers them, so that an interrupt never lands between a read and its
delivery (the message would be lost); the deferred Ctrl-C is raised once the batch is out.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass

__all__ = ["HeldSigint"]


class HeldSigint:
    """Holds a Ctrl-C back while the main thread reads and delivers a batch.

    A KeyboardInterrupt raised between the frames of a message, or between reading a message
    and delivering it, would lose that message; the handler runs right after the batch
    instead. The holding handler is installed once per wait (``installed``), not per batch:
    setting a signal handler costs more than a small message.
    """

    def __init__(self) -> None:
        self.original: Callable[[int, FrameType | None], Any] | None = None
        self.holding = False
        self.caught: list[FrameType | None] = []

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """Around a wait: Ctrl-C acts at once, except inside ``held``."""
        original = signal.getsignal(signal.SIGINT)
        if (
            self.original is not None  # nested: already installed
            or threading.current_thread() is not threading.main_thread()
            or not callable(original)  # SIG_DFL or SIG_IGN: nothing runs in Python
        ):
            yield
            return

        def handler(signum: int, frame: FrameType | None) -> None:
            if self.holding:
                self.caught.append(frame)
            else:
                original(signum, frame)

        signal.signal(signal.SIGINT, handler)
        self.original = original
        try:
            yield
        finally:
            self.original = None
            signal.signal(signal.SIGINT, original)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Hold Ctrl-C back until the block is done (in the main thread, while installed)."""
        original = self.original
        if original is None or threading.current_thread() is not threading.main_thread():
            yield
            return
        self.holding = True
        try:
            yield
        finally:
            self.holding = False
            if self.caught:
                frame = self.caught[0]
                self.caught.clear()
                original(signal.SIGINT, frame)
