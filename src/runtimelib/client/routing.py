"""Where each received message goes: the waiting request, the comms, or a bounded backlog.

Sans-IO and shared by both client twins. Replies and outputs are matched to their request by
``parent_header.msg_id``, never by arrival order, so any number of requests can be in flight.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from ..errors import KernelDiedError, RemoteProtocolError
from ..messages import Content, Message
from ..transports.base import OutputGap, RequestLost

__all__ = ["DEFAULT_BACKLOG", "RECONNECT_WAIT", "Inbox", "Router"]

log = logging.getLogger("runtimelib.client")

#: How many messages that no request claims are kept (the newest win).
DEFAULT_BACKLOG = 1000

#: After a restart, how long requests wait for the new kernel to answer and for iopub to hear
#: it, before they are let through anyway.
RECONNECT_WAIT = 10.0


class Inbox(Protocol):
    """Where the messages of one request are delivered."""

    def put(self, item: Message[Content] | BaseException) -> None:
        """Deliver a message, or an error that ends the request."""


class Router:
    """Routes received messages to the inboxes of pending requests."""

    def __init__(self, backlog: int = DEFAULT_BACKLOG) -> None:
        self._inboxes: dict[str, Inbox] = {}
        #: Messages nobody was waiting for (other clients' outputs, late arrivals), bounded.
        self.backlog: deque[Message[Content]] = deque(maxlen=backlog)
        #: Called for every message, before routing (e.g. comms, a "watch everything" hook).
        self.listeners: list[Callable[[Message[Content]], None]] = []
        self.failure: BaseException | None = None
        #: When the last iopub message arrived (time.monotonic()).
        self.last_iopub = 0.0
        #: Why output of a pending request may be missing, by its msg_id (see OutputGap).
        self.gaps: dict[str, str] = {}
        # Pending requests the kernel has begun (it sent a status for them), a subset of the
        # inboxes' keys: a kernel that then says it is starting is a new one, and their
        # replies will never come.
        self._begun: set[str] = set()

    def open(self, msg_id: str, inbox: Inbox) -> None:
        """Send the messages whose parent is ``msg_id`` to ``inbox`` from now on.

        While the kernel is known to be dead this raises that failure instead: the request
        must not be sent at all. One reported failed must never reach a kernel later (a
        stopped kernel that resumes, a dead one that its manager restarts on the same ports).
        """
        if self.failure is not None:
            raise self.failure
        self._inboxes[msg_id] = inbox

    def close(self, msg_id: str) -> None:
        """Stop routing for ``msg_id``; later messages go to the backlog."""
        self._inboxes.pop(msg_id, None)
        self.gaps.pop(msg_id, None)
        self._begun.discard(msg_id)

    @property
    def pending(self) -> int:
        """How many requests are waiting."""
        return len(self._inboxes)

    def dispatch(
        self, message: Message[Content] | RemoteProtocolError | OutputGap | RequestLost
    ) -> None:
        """Deliver one received message, or the error that a message for a request could not
        be read (too large): that request ends with it, rather than missing an output; or
        the news that messages may have been lost (every pending request records why)."""
        if not isinstance(message, Message):  # the rare cases, off the path of every message
            self._dispatch_news(message)
            return
        if message.channel == "iopub":
            self.last_iopub = time.monotonic()
        for listener in self.listeners:
            try:
                listener(message)
            except Exception:
                log.exception("a message listener failed on %s", message.msg_type)
        parent = message.parent_id
        inbox = self._inboxes.get(parent) if parent else None
        if inbox is not None:
            if message.msg_type == "status" and parent:
                self._begun.add(parent)
            inbox.put(message)
        else:
            state = getattr(message.content, "execution_state", None)
            if state == "starting" and message.msg_type == "status":
                self._kernel_started()
            self.backlog.append(message)

    def _kernel_started(self) -> None:
        """The kernel says it is starting: one that restarted (another client or its server
        restarted it) has lost what it was running. iopub comes from one socket in order, so
        a request the new kernel began said busy after this: only the old kernel's requests
        fail. Requests it had not begun may still reach the new kernel."""
        for msg_id in self._begun:
            self._inboxes[msg_id].put(
                KernelDiedError(
                    "the kernel restarted while running this request (restarted by another"
                    " client or by its server): its reply will not come"
                )
            )
        self._begun.clear()

    def _dispatch_news(self, news: RemoteProtocolError | OutputGap | RequestLost) -> None:
        if isinstance(news, RequestLost):
            lost = self._inboxes.get(news.msg_id)
            if lost is not None:
                lost.put(news.error)
        elif isinstance(news, OutputGap):
            for msg_id in self._inboxes:
                self.gaps.setdefault(msg_id, news.reason)
            log.warning("output may be missing: %s", news.reason)
        else:
            target = self._inboxes.get(news.parent_id or "")
            if target is not None:
                target.put(news)
            else:
                log.warning("dropped a message nobody waits for: %s", news)

    def fail(self, error: BaseException) -> None:
        """End every pending request with ``error``, and refuse new ones until ``recover``."""
        self.failure = error
        for inbox in list(self._inboxes.values()):
            inbox.put(error)

    def recover(self) -> None:
        """The kernel is back (restarted): accept requests again."""
        self.failure = None
