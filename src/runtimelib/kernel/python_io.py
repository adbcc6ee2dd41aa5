"""The built-in Python kernel's stdout and stderr: text written by running code reaches the
frontend promptly, in whole lines, as a child of the request it runs for, and an interrupt
never lands inside the kernel's own code. Code runs in the main thread (the main shell's) or
in a subshell's own thread, at the same time: each such thread has its own streams.
"""

from __future__ import annotations

import io
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from ..messages import Message, Stream

__all__ = ["FLUSH_SECONDS", "CodeThread", "Flusher", "OutStream", "RoutedStream", "Shield"]

#: How long written text waits for more before it is sent.
FLUSH_SECONDS = 0.05


class Shield:
    """Defers an interrupt while the main thread runs the kernel's own code for the user's
    (publishing, taking locks): a KeyboardInterrupt raised there, between a lock's acquire and
    the ``with`` that releases it, would leave the lock held and the kernel stuck. The
    deferred interrupt is raised on leaving, back in the user's code.
    """

    def __init__(self) -> None:
        self.main = threading.main_thread().ident
        #: Whether the main thread runs the user's code now (an interrupt raises there).
        self.running_code = False
        #: How deep in the kernel's own code the main thread is.
        self.depth = 0
        #: An interrupt came while shielded: it is raised on leaving.
        self.deferred = False

    def __enter__(self) -> None:
        if threading.get_ident() == self.main:
            self.depth += 1

    def __exit__(self, *exc_info: object) -> None:
        if threading.get_ident() != self.main:
            return
        self.depth -= 1
        if self.depth == 0 and self.deferred:
            self.deferred = False
            if self.running_code:
                raise KeyboardInterrupt


class _TextOut(io.TextIOBase):
    """A text stream that code writes to: UTF-8, writable, not a terminal."""

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False


class OutStream(_TextOut):
    """sys.stdout / sys.stderr for running code: text goes to the frontend promptly.

    Text is gathered for a short pause (so a loop of prints makes a few messages, not
    thousands), then sent in whole lines: the start of a line written just now waits for its
    end, as ipykernel's streams do (consumers that keep each message an output, nbclient's
    default, would otherwise store a line in two pieces). A partial line that stays alone
    longer than ``FLUSH_SECONDS`` (a progress bar) is sent as it is by the flusher thread.
    """

    def __init__(self, kernel: Any, name: str) -> None:
        super().__init__()
        self.kernel = kernel
        self.name = name
        self._buffer: list[str] = []
        self._lock = threading.Lock()
        # Held from taking text out of the buffer until it is published: the code's thread and
        # the flusher both send, and text taken first must go out first.
        self._sending = threading.Lock()
        self._first_write = 0.0
        self.parent: Message[Any] | None = None

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if not text:
            return 0
        with self.kernel.shield:
            with self._lock:
                if not self._buffer:
                    self._first_write = time.monotonic()
                self._buffer.append(text)
                due = time.monotonic() - self._first_write >= FLUSH_SECONDS
            if due:
                self._send(whole_lines=True)
        return len(text)

    def flush(self) -> None:
        self._send(whole_lines=False)

    def flush_if_stale(self) -> None:
        with self._lock:
            stale = bool(self._buffer) and time.monotonic() - self._first_write >= FLUSH_SECONDS
        if stale:
            self._send(whole_lines=True)

    def _send(self, *, whole_lines: bool) -> None:
        """Publish what is buffered; with ``whole_lines``, up to its last newline only (all
        of it if it holds none: a partial line that has waited long enough)."""
        with self.kernel.shield, self._sending:
            with self._lock:
                text = "".join(self._buffer)
                self._buffer.clear()
                cut = text.rfind("\n") + 1 if whole_lines else len(text)
                if cut == 0:
                    cut = len(text)
                if cut < len(text):
                    self._buffer.append(text[cut:])
                    self._first_write = time.monotonic()
                text = text[:cut]
            if text:
                self.kernel.publish_now(Stream(name=self.name, text=text), self.parent)


class Flusher(threading.Thread):
    """Sends partial output that has waited long enough, while code runs."""

    def __init__(self, streams: list[OutStream]) -> None:
        super().__init__(name="runtimelib-output-flusher", daemon=True)
        self.streams = streams
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(FLUSH_SECONDS / 2):
            for stream in self.streams:
                stream.flush_if_stale()


_local = threading.local()


class CodeThread:
    """A thread that runs user code (the main thread, or a subshell's), with the streams and
    reply extras (payloads, whether input() may ask) of what it runs now."""

    def __init__(self, kernel: Any) -> None:
        self.stdout = OutStream(kernel, "stdout")
        self.stderr = OutStream(kernel, "stderr")
        self.payloads: list[dict[str, Any]] = []
        self.allow_stdin = False
        #: Work for this thread; None ends it.
        self.jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()

    @staticmethod
    def current() -> CodeThread | None:
        """The CodeThread the calling thread is, if it is one."""
        return getattr(_local, "code_thread", None)

    def serve(self) -> None:
        """Run jobs in the calling thread until a None job."""
        _local.code_thread = self
        while (job := self.jobs.get()) is not None:
            job()

    def start(self, name: str) -> None:
        """Serve in a new thread."""
        threading.Thread(target=self.serve, name=name, daemon=True).start()

    def stop(self) -> None:
        self.jobs.put(None)

    def begin(self, parent: Message[Any] | None, allow_stdin: bool = False) -> None:
        self.stdout.parent = self.stderr.parent = parent
        self.payloads = []
        self.allow_stdin = allow_stdin

    def end(self) -> None:
        self.stdout.parent = self.stderr.parent = None

    def flush(self) -> None:
        self.stdout.flush()
        self.stderr.flush()


class RoutedStream(_TextOut):
    """sys.stdout or sys.stderr while code runs: what a thread writes goes to its
    CodeThread's stream; threads the code started write to the main thread's."""

    def __init__(self, main: CodeThread, name: str) -> None:
        super().__init__()
        self.main = main
        self.name = name

    def target(self) -> OutStream:
        here = CodeThread.current() or self.main
        return here.stdout if self.name == "stdout" else here.stderr

    def write(self, text: str) -> int:
        return self.target().write(text)

    def flush(self) -> None:
        self.target().flush()
