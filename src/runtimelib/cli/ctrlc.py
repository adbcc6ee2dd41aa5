"""Ctrl-C while a kernel runs code: one policy for ``run``, ``exec`` and ``console``.

The first Ctrl-C interrupts the kernel and the command goes on waiting for what the code
does next (the traceback of the interrupted code, usually). A second one stops waiting: it
raises KeyboardInterrupt in the main thread, and the command decides what becomes of the
kernel (``run`` stops the kernel it started; ``exec`` and ``console --existing`` leave
someone else's kernel running).

Interrupting may wait for an interrupt_reply, and the signal may arrive in the middle of a
write to the very stream a note would go to, so the interrupt and its note are sent from a
thread, never from the handler itself. While a prompt answers the kernel's ``input()``,
Ctrl-C must end that prompt at once: the handler raises there instead.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

from .. import errors
from .term import Terminal

__all__ = ["CtrlC"]


class CtrlC:
    """Interrupt the kernel on the first Ctrl-C, stop waiting on the second.

    ``then`` ends the note shown at the first one: what a second Ctrl-C will do.
    """

    def __init__(
        self, interrupt: Callable[[], None], terminal: Terminal, *, then: str = "stop waiting"
    ) -> None:
        self.interrupt = interrupt
        self.terminal = terminal
        self.then = then
        #: How many times Ctrl-C was pressed while installed.
        self.count = 0
        #: While True (a prompt is answering input()), Ctrl-C raises KeyboardInterrupt at once.
        self.answering = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.answering:
            raise KeyboardInterrupt
        self.count += 1
        if self.count > 1:
            raise KeyboardInterrupt
        threading.Thread(target=self.interrupt_now, args=(True,), daemon=True).start()

    def interrupt_now(self, tell: bool = False) -> None:
        """Interrupt the kernel; a failure is reported, never raised."""
        if tell:
            self.terminal.note(f"\ninterrupting the kernel (Ctrl-C again to {self.then})")
        try:
            self.interrupt()
        except errors.RuntimelibError as exc:
            self.terminal.error_line(f"runtimelib: could not interrupt the kernel: {exc}")

    @contextlib.contextmanager
    def installed(self) -> Iterator[CtrlC]:
        """The policy in force (in the main thread; elsewhere signals cannot be caught)."""
        self.count = 0
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = signal.signal(signal.SIGINT, self)
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)
