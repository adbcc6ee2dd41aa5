"""Where the messages of one request wait for it: an inbox for async code, one for threads,
and the sink that feeds a blocking execution as messages are read (client twins' shared
shapes; the router puts, the request's caller gets)."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

import anyio

from ..deadlines import time_left
from ..errors import KernelTimeoutError
from ..messages import Content, Message
from .execution import Execution

__all__ = ["AsyncInbox", "ExecutionSink", "ThreadInbox", "Waiter"]

# Blocks until the event is set or the timeout passes: the transport's wait, which may read
# the sockets in the waiting thread.
Waiter = Callable[[threading.Event, "float | None"], bool]


class AsyncInbox:
    """A request's inbox: a deque, and an event while its task waits.

    Given a channel, it takes only that channel's messages (a reply, not the busy and idle
    statuses around it), so the waiting task is not woken for messages it would throw away.
    The task is woken once for everything that arrived while it ran, not once per message.
    """

    def __init__(self, channel: str | None = None) -> None:
        self._items: deque[Message[Content] | BaseException] = deque()
        self._arrived: anyio.Event | None = None
        self._channel = channel

    def put(self, item: Message[Content] | BaseException) -> None:
        if self._channel is not None and getattr(item, "channel", self._channel) != self._channel:
            return
        self._items.append(item)
        if self._arrived is not None:
            self._arrived.set()

    async def get(self, deadline: float) -> Message[Content]:
        # What is already here is taken without a trip through the event loop: during a flood
        # that trip cost more than the message.
        while not self._items:
            self._arrived = arrived = anyio.Event()
            try:
                if deadline == math.inf:
                    await arrived.wait()
                else:
                    with anyio.move_on_after(max(deadline - anyio.current_time(), 0)):
                        await arrived.wait()
                    if not self._items:
                        raise KernelTimeoutError("the kernel did not answer in time")
            finally:
                self._arrived = None
        item = self._items.popleft()
        if isinstance(item, BaseException):
            raise item
        return item

    #: The name the loops both clients share use (requests.py).
    take = get

    def raise_failure(self) -> None:
        """Raise the error that ended the request, if one did."""
        for item in self._items:
            if isinstance(item, BaseException):
                raise item

    def close(self) -> None:
        self._items.clear()


class ThreadInbox:
    """A request's inbox, filled by whichever thread reads the sockets (the transport's, or
    the caller's own while it waits: ``Transport.wait``).

    A deque and an event rather than a queue: the consumer is woken once for everything that
    arrived while it was busy, not once per message, which matters when a kernel floods.
    Given a channel, it takes only that channel's messages (a reply, not the busy and idle
    statuses around it): each message the caller would throw away costs it a thread switch.
    """

    def __init__(self, wait: Waiter, channel: str | None = None) -> None:
        self._items: deque[Message[Content] | BaseException] = deque()
        self._ready = threading.Event()
        self._wait = wait
        self._channel = channel

    def put(self, item: Message[Content] | BaseException) -> None:
        if self._channel is not None and getattr(item, "channel", self._channel) != self._channel:
            return
        self._items.append(item)
        self._ready.set()

    def get(self, deadline: float) -> Message[Content]:
        while True:
            try:
                item = self._items.popleft()
            except IndexError:
                self._ready.clear()
                if self._items:  # appended between the popleft and the clear
                    continue
                wait = time_left(deadline, time.monotonic())
                if not self._wait(self._ready, wait):
                    raise KernelTimeoutError("the kernel did not answer in time") from None
                continue
            if isinstance(item, BaseException):
                raise item
            return item

    async def take(self, deadline: float) -> Message[Content]:
        """``get`` as a coroutine that blocks instead of suspending, for the loops both
        clients share (requests.py)."""
        return self.get(deadline)

    def close(self) -> None:
        """Nothing to release (the async inbox has a stream to close)."""


class ExecutionSink:
    """An inbox that feeds an Execution in the reading thread and wakes the caller only for
    input requests, errors and the end."""

    def __init__(self, execution: Execution) -> None:
        self.execution = execution
        self.wake = threading.Event()
        self.done = threading.Event()
        self.inputs: deque[Message[Content]] = deque()
        self.error: BaseException | None = None

    def put(self, item: Message[Content] | BaseException) -> None:
        if isinstance(item, BaseException):
            self.error = item
            self.wake.set()
            return
        if self.done.is_set():
            return
        action = self.execution.classify(item)
        if action == "input":
            self.inputs.append(item)
            self.wake.set()
        elif action == "yield":
            self.execution.collect(item)
            if self.execution.done:
                self.done.set()
                self.wake.set()
