"""The blocking transport's I/O thread, and the readers that take turns at its sockets.

Who reads. One reader at a time drains the sockets and delivers what they hold: a caller
waiting for its reply, else the I/O thread. The thread holds that role only while it drains,
never while it sleeps, so a caller that starts waiting reads at once, with no hand-over; and
while callers wait (and for ``_QUIET`` after) the thread sleeps away from the sockets. The
design this replaced had the thread read always and hand each message to the waiting caller:
a thread switch per reply, 89 system calls per blocking kernel_info of which 20 futex
waits and wakes (strace, 2,000 in a row against xeus-python), against 62 and 1.6 with
this one (measured when it changed).

Why Ctrl-C is held (sigint.py). A Ctrl-C that lands between taking a batch off the sockets
and delivering it would lose those messages; it is held for the batch and raised after.

Why a pipe next to the sockets. A send touches its socket and may consume the signal that a
message arrived there; the sender then writes to the reader's pipe, which wakes it to look.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import zmq

from ...deadlines import deadline_after, time_left
from ...errors import EncryptionError, RemoteProtocolError, TransportError
from ..base import Deliver
from .channels import Beats, unreadable
from .sigint import HeldSigint
from .sockets import (
    POLLIN,
    HandshakeWatch,
    client_socket,
    recv_parts,
    send_parts,
    watched_socket,
    zmq_events,
)

if TYPE_CHECKING:
    from .blocking import ZmqTransport

__all__ = ["IOThread"]

log = logging.getLogger("runtimelib.transport")


#: Messages read per batch before delivering them (and letting a deferred Ctrl-C through).
_BATCH = 256

#: How long a waiting reader sleeps at most before looking at its event again.
_WAIT_SLICE = 0.1

#: The transport's thread goes back to reading only once no caller has waited for this long:
#: callers making one request after another read their own replies, and the thread, which
#: would wake for each message just to leave it to them, stays away (it looks again this
#: often while callers read).
_QUIET = 0.01


def _min_ms(poll_ms: int | None, seconds: float) -> int:
    limit = int(seconds * 1000)
    return limit if poll_ms is None else min(poll_ms, limit)


class IOThread(threading.Thread):
    """Owns a ZmqTransport's sockets and decides who reads them.

    One reader at a time (``owner``) drains the message sockets and delivers: a caller
    waiting for its reply, or else this thread. This thread holds the role only while it
    drains, never while it sleeps, so a caller that starts waiting becomes the reader at
    once, with no hand-over; and while callers wait, and for a moment after (``_QUIET``),
    this thread sleeps away from the sockets, on its pipe and the heartbeat only.

    Any thread may send: ``_lock`` serialises every call into the message sockets, and
    readers poll the sockets' descriptors, not the sockets, so they hold no lock while they
    sleep. Deliveries happen outside the lock, so a handler may send (a comm's reply), and
    from one queue, so a handler that waits for a reply (and reads meanwhile) still sees
    the messages in the order they arrived.
    """

    def __init__(
        self,
        transport: ZmqTransport,
        deliver: Deliver,
        dead: Callable[[BaseException], None],
        alive: Callable[[], None],
    ) -> None:
        super().__init__(name="runtimelib-zmq-io", daemon=True)
        self.transport = transport
        self.deliver, self.dead, self.alive = deliver, dead, alive
        # Two pipes: one tells this thread to look at the roles again (or stop), one wakes
        # whoever reads (a send consumed the socket's signal, or an event was set elsewhere).
        # Writing to a pipe is thread-safe, unlike touching a zmq socket from two threads.
        self._wake_r, self._wake_w = os.pipe()
        self._read_r, self._read_w = os.pipe()
        for fd in (self._wake_r, self._read_r):
            os.set_blocking(fd, False)
        self._stopping = False
        self._lock = threading.Lock()
        self._roles = threading.Condition()
        self._owner: int | None = None  # the reading thread's ident
        self._waiting = 0  # callers in wait()
        self._wait_ended = 0.0  # when the last caller stopped waiting (time.monotonic())
        self._sigint = HeldSigint()
        # Read but not yet delivered: a handler that reads in its delivery takes these first.
        self._undelivered: deque[tuple[str, list[bytes]]] = deque()
        # A failure to deliver once the sockets are empty (see fail_after_delivery).
        self._failure: tuple[BaseException, Callable[[BaseException], None]] | None = None
        # A context of its own: its I/O thread serves only this client, and nothing another
        # client left in a shared context can affect it.
        self.context: zmq.Context[Any] = zmq.Context()
        self.sockets: dict[str, zmq.Socket[Any]] = {}
        self._readers = zmq.Poller()  # the sockets' descriptors, and the reader's pipe
        self.started = threading.Event()
        self.error: BaseException | None = None

    # -- any thread ---------------------------------------------------------------------------

    def wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def wake_reader(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._read_w, b"x")

    def stop(self) -> None:
        self._stopping = True
        self.wake()
        self.wake_reader()

    def send(self, channel: str, frames: list[Any]) -> None:
        with self._lock:
            sock = self.sockets.get(channel)
            if sock is None or self._stopping:
                raise TransportError(f"no channel {channel!r} to send on")
            try:
                # Never block with the lock held: a full queue means the kernel has not read
                # its channel for a thousand messages.
                send_parts(sock, frames, zmq.NOBLOCK)
            except zmq.Again:
                raise TransportError(f"the kernel is not reading its {channel} channel") from None
            except zmq.ZMQError as exc:
                raise TransportError(f"cannot send on {channel}: {exc}") from exc
            # Sending may consume the signal that a message arrived on this socket; the
            # reader sleeping on the descriptor would then not see it.
            if zmq_events(sock) & POLLIN:
                self.wake_reader()

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        """Wait for ``event``, as the reader when no other caller reads."""
        if event.is_set():
            return True
        deadline = deadline_after(timeout, time.monotonic())
        me = threading.get_ident()
        with self._roles:
            nested = self._owner == me  # a delivery's handler waits for a reply
            if not nested:
                self._waiting += 1
        try:
            with self._sigint.installed():
                return self._wait_for(event, deadline, nested)
        finally:
            if not nested:
                with self._roles:
                    self._waiting -= 1
                    self._wait_ended = time.monotonic()

    def _wait_for(self, event: threading.Event, deadline: float, nested: bool) -> bool:
        while not event.is_set():
            if self._stopping:  # the sockets are going: only the event is left
                left = time_left(deadline, time.monotonic())
                return event.wait(left)
            if time.monotonic() >= deadline:
                return False
            if nested:
                self._read_until(event.is_set, deadline)
            elif self._take_reading(event, deadline):
                try:
                    self._read_until(event.is_set, deadline)
                finally:
                    self._let_go()
        return True

    def fail_after_delivery(
        self, error: BaseException, fail: Callable[[BaseException], None]
    ) -> None:
        """Leave ``fail(error)`` to whoever reads: it runs once a drain finds the sockets
        empty, so everything received before it is delivered first."""
        if self._stopping or not self.is_alive():
            fail(error)
            return
        self._failure = (error, fail)
        self.wake()
        self.wake_reader()

    # -- readers ------------------------------------------------------------------------------

    def _take_reading(self, event: threading.Event, deadline: float) -> bool:
        """Become the reader (another waiting caller, or this thread for one drain, may be);
        False if ``event`` was set, the time ran out or the transport stops first."""
        me = threading.get_ident()
        with self._roles:
            while self._owner not in (None, me):
                if event.is_set() or self._stopping:
                    return False
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                # The reader notifies after each delivery; the slice bounds a missed one.
                self._roles.wait(min(left, _WAIT_SLICE))
            if event.is_set():
                return False
            self._owner = me
            return True

    def _let_go(self) -> None:
        with self._roles:
            self._owner = None
            if self._waiting:
                self._roles.notify_all()

    def _read_until(self, done: Callable[[], bool], deadline: float) -> None:
        """Drain and deliver until ``done()``, the deadline or a stop (as the reader)."""
        while not done() and not self._stopping:
            if self._drain():
                continue  # more may be queued: the descriptor will not signal it again
            if done():
                return
            left = deadline - time.monotonic()
            if left <= 0:
                return
            for item, _ in self._readers.poll(int(min(left, _WAIT_SLICE) * 1000) + 1):
                if item == self._read_r:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._read_r, 65536)

    def _drain(self) -> bool:
        """Read what the sockets hold (iopub first, so a reply follows the outputs sent
        before it, as far as two sockets allow) and deliver it; True if a batch filled."""
        pending = self._undelivered
        with self._lock:
            ready = [(n, sock) for n, sock in self.sockets.items() if zmq_events(sock) & POLLIN]
        if not ready and not pending:
            failure, self._failure = self._failure, None
            if failure is not None:
                failure[1](failure[0])  # everything received before it was delivered
            return False
        taken = 0
        with self._sigint.held():
            with self._lock:
                for name, sock in ready:
                    while taken < _BATCH:
                        try:
                            pending.append((name, recv_parts(sock, zmq.NOBLOCK)))
                        except zmq.Again:
                            break
                        except zmq.ZMQError as exc:  # closed under us: we are stopping
                            log.debug("cannot read %s: %s", name, exc)
                            return False
                        taken += 1
            session, deliver = self.transport.session, self.deliver
            while pending:
                name, frames = pending.popleft()
                try:
                    message = session.deserialize(frames, channel=name)
                except RemoteProtocolError as exc:
                    unreadable(exc, name, deliver)
                    continue
                deliver(message)
        if self._waiting > 1:
            with self._roles:  # other waiting callers look at their events again
                self._roles.notify_all()
        return taken >= _BATCH

    # -- this thread --------------------------------------------------------------------------

    def run(self) -> None:
        transport = self.transport
        try:
            # iopub first: _drain reads in this order.
            sockets = {
                name: client_socket(
                    transport.info,
                    name,
                    session_id=transport.session.session_id,
                    context=self.context,
                )
                for name in ("iopub", "shell", "control", "stdin")
            }
        except TransportError as exc:
            self.error = exc
            self.started.set()
            return
        self.sockets = sockets
        for sock in sockets.values():
            self._readers.register(sock.getsockopt(zmq.FD), zmq.POLLIN)
        self._readers.register(self._read_r, zmq.POLLIN)
        away = zmq.Poller()  # while callers read: the heart and the wake pipe only
        away.register(self._wake_r, zmq.POLLIN)
        heart = _HeartWatch(self, away)
        reading = zmq.Poller()  # while this thread reads: the same, and the sockets
        for fd, _ in self._readers.sockets:
            reading.register(fd, zmq.POLLIN)
        reading.register(self._wake_r, zmq.POLLIN)
        if heart.socket is not None:
            reading.register(heart.socket, zmq.POLLIN)
        me = threading.get_ident()
        self.started.set()
        try:
            while not self._stopping:
                with self._roles:
                    mine = (
                        self._waiting == 0
                        and self._owner is None
                        and time.monotonic() - self._wait_ended >= _QUIET
                    )
                    if mine:
                        self._owner = me
                if mine:
                    try:
                        more = self._drain()
                    finally:
                        self._let_go()
                    if more:
                        continue
                    ready = reading.poll(heart.poll_ms())
                else:
                    ready = away.poll(_min_ms(heart.poll_ms(), _QUIET))
                for item, _ in ready:
                    if item == self._wake_r:
                        with contextlib.suppress(BlockingIOError):
                            os.read(self._wake_r, 65536)
                    elif item == self._read_r:
                        with contextlib.suppress(BlockingIOError):
                            os.read(self._read_r, 65536)
                    elif item is heart.socket:
                        heart.on_beat()
                heart.tick()
        finally:
            heart.close()
            with self._roles:  # a reading caller sees _stopping and lets go
                while self._owner not in (None, me):
                    self._roles.wait(_WAIT_SLICE)
                self._owner = me
            with self._lock:
                self.sockets = {}
                for sock in sockets.values():
                    sock.close(linger=500)
            self.context.term()
            for fd in (self._wake_r, self._wake_w, self._read_r, self._read_w):
                os.close(fd)


class _HeartWatch:
    """Heartbeats as seen from the I/O thread: ping every interval, count misses."""

    def __init__(self, thread: IOThread, poller: zmq.Poller) -> None:
        transport = thread.transport
        self.thread = thread
        self.interval = transport.heartbeat_interval
        self.beats = Beats(transport.heartbeat_misses)
        self.socket: zmq.Socket[Any] | None = None
        self.waiting = False
        self.next_at = time.monotonic()
        self.handshake: HandshakeWatch | None = None
        if self.interval:
            self.socket, self.handshake = watched_socket(
                transport.info, "hb", session_id="", context=thread.context
            )
            poller.register(self.socket, zmq.POLLIN)

    def poll_ms(self) -> int | None:
        if self.socket is None or self.interval is None:
            return None
        return max(0, int((self.next_at - time.monotonic()) * 1000))

    def on_beat(self) -> None:
        assert self.socket is not None
        with contextlib.suppress(zmq.Again):
            self.socket.recv(zmq.NOBLOCK)
        if self.beats.answered():
            self.thread.alive()
        self.waiting = False

    def tick(self) -> None:
        if self.socket is None or self.interval is None:
            return
        now = time.monotonic()
        if now < self.next_at:
            return
        if self.waiting:  # the last beat was not answered within the interval
            handshake = self.handshake
            if handshake is not None and not handshake.succeeded:
                # Never connected: a CurveZMQ mismatch fails at once, with its reason.
                refused = handshake.failure()
                if refused is not None:
                    self.thread.fail_after_delivery(EncryptionError(refused), self.thread.dead)
                    self.interval = None  # no more beats: nothing can be heard
                    return
            death = self.beats.missed()
            if death is not None:  # what it sent before falling silent goes first
                self.thread.fail_after_delivery(death, self.thread.dead)
        with contextlib.suppress(zmq.ZMQError):
            self.socket.send(b"ping", zmq.NOBLOCK)
        self.waiting = True
        self.next_at = now + self.interval

    def close(self) -> None:
        if self.handshake is not None:
            self.handshake.close()
            self.handshake = None
        if self.socket is not None:
            self.socket.close(linger=0)
