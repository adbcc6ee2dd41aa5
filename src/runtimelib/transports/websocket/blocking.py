"""The blocking websocket transport: every channel of a remote kernel over one websocket, for
plain threads.

A reader thread owns the receiving side: it reads, delivers, pings, checks the kernel's model
on schedule, and reconnects when the websocket drops (the same rules as the async transport,
from connection.py). Callers send from their own threads, one at a time; while the websocket
is down a send waits (up to ``reconnect_timeout``) for it to be back, so a request made
meanwhile is sent once the client is back, never dropped.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, NoReturn

from ...errors import RuntimelibError, ServerError, TransportError
from ...messages import Message
from ...protocol import Session
from ..base import Deliver, OutputGap, Transport
from .connection import (
    SETTLE,
    BlockingProbe,
    Endpoint,
    KernelWebsocket,
    Opened,
    Reconnection,
    WebsocketCore,
    quick_ack,
    refusal_is_final,
)

__all__ = ["WebsocketTransport"]

log = logging.getLogger("runtimelib.transport")

#: How often the reader looks up from the socket to ping and poll when nothing arrives.
_TICK = 0.25


class WebsocketTransport(WebsocketCore, Transport):
    """All channels of a remote kernel over a websocket, for blocking code (see
    WebsocketAsyncTransport for the settings)."""

    def __init__(
        self,
        endpoint: Endpoint,
        session: Session,
        *,
        probe: BlockingProbe | None = None,
        **settings: float,
    ) -> None:
        super().__init__(endpoint, session, **settings)
        self.probe = probe
        self._sock: socket.socket | None = None
        self._early: list[Any] = []
        self._state = threading.Condition()
        self._sending = threading.Lock()
        self._ended = False
        self._thread: threading.Thread | None = None
        self._gap: str | None = None

    # -- opening -------------------------------------------------------------------------------

    def start(
        self,
        deliver: Deliver,
        dead: Callable[[BaseException], None],
        alive: Callable[[], None],
    ) -> None:
        """Open the websocket (a refusal is a typed ServerError) and start the reader."""
        if self._thread is not None:
            return
        self._dead, self._alive = dead, alive
        self._open()
        self._thread = threading.Thread(
            target=self._run, args=(deliver,), name="runtimelib-websocket", daemon=True
        )
        self._thread.start()

    def _open(self) -> None:
        endpoint = self.endpoint
        ws = KernelWebsocket(self.session, endpoint)
        deadline = time.monotonic() + self.open_timeout
        try:
            sock = socket.create_connection(
                (endpoint.host, endpoint.port), timeout=self.open_timeout
            )
        except OSError as exc:
            raise TransportError(
                f"cannot reach {endpoint.authority} for the kernel's websocket: {exc}"
            ) from None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if endpoint.ssl_context is not None:
                sock = endpoint.ssl_context.wrap_socket(sock, server_hostname=endpoint.host)
            sock.sendall(ws.handshake())
            events: list[Any] = []
            while not ws.open:
                if ws.closed:
                    raise TransportError("the server closed the websocket at once")
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                events = ws.receive_data(sock.recv(65536))
        except TimeoutError:
            sock.close()
            raise TransportError(
                f"no websocket from {endpoint.authority} within {self.open_timeout:g} s"
            ) from None
        except OSError as exc:
            sock.close()
            raise TransportError(f"the kernel's websocket failed while opening: {exc}") from None
        except BaseException:
            sock.close()
            raise
        sock.settimeout(_TICK)
        with self._state:
            self._ws, self._sock = ws, sock
            self._early = [event for event in events if not isinstance(event, Opened)]
            self._last_pong = time.monotonic()
            self._state.notify_all()

    # -- sending -------------------------------------------------------------------------------

    def send(self, message: Message[Any]) -> None:
        """Send a message from the caller's thread; while the websocket is down, wait for it
        to be back (TransportError if it is not within ``reconnect_timeout``)."""
        item = self._encode(message)
        deadline = time.monotonic() + self.reconnect_timeout
        while True:
            with self._state:
                while not (self._ws is not None and self._ws.open) and not self._ended:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TransportError(
                            f"the websocket was not back within {self.reconnect_timeout:g} s"
                        )
                    self._state.wait(left)
                if self._ended:
                    raise TransportError("the websocket is closed for good")
                ws, sock = self._ws, self._sock
            assert ws is not None
            assert sock is not None
            try:
                self._transmit(sock, ws.frame(item.frame))
                self._written(item, ws)
                return
            except (OSError, TransportError):
                time.sleep(0.01)  # the reader sees the drop too, and reconnects

    def _transmit(self, sock: socket.socket, data: bytes) -> None:
        with self._sending:
            sock.sendall(data)

    # -- reading -------------------------------------------------------------------------------

    def _run(self, deliver: Deliver) -> None:
        try:
            while not self._closing:
                self._read(deliver)
                if self._closing:
                    break
                self._reconnect(deliver)
        except _Ended:
            pass
        except Exception as exc:  # the reader must not die silently
            log.exception("the websocket reader failed")
            self._tell_dead(TransportError(f"the websocket reader failed: {exc}"))
        finally:
            with self._state:
                self._ended = True
                self._state.notify_all()

    def _read(self, deliver: Deliver) -> None:
        ws, sock = self._ws, self._sock
        assert ws is not None
        assert sock is not None
        early, self._early = self._early, []
        if self._handle(early, deliver, time.monotonic()):
            return
        # After a reconnection (even with no suspect yet: a send under way when the drop came
        # records its request late).
        judge_at = time.monotonic() + SETTLE if self.reconnects else None
        next_ping = time.monotonic() + self.ping_interval
        next_poll = time.monotonic() + self.poll_interval
        while not self._closing:
            try:
                data = sock.recv(65536)
                quick_ack(sock)
            except TimeoutError:
                data = None
            except OSError:
                data = b""
            now = time.monotonic()
            if data is not None and self._handle(ws.receive_data(data), deliver, now):
                return
            try:
                pending = ws.outgoing()
                if now >= next_ping:
                    next_ping = now + self.ping_interval
                    if self._pong_overdue(now):
                        log.warning(
                            "no pong from the server in %g s: reconnecting", self.ping_timeout
                        )
                        return
                    pending += ws.ping()
                if pending:
                    self._transmit(sock, pending)
            except OSError:
                return
            if now >= next_poll and self.probe is not None:
                next_poll = now + self.poll_interval
                self._poll()
            if judge_at is not None and now >= judge_at:
                judge_at = None
                self._judge_now(deliver)

    def _judge_now(self, deliver: Deliver) -> None:
        if not self._suspected:
            return
        resend, lost = self._judge(self._kernel_state(), self._gap)
        with contextlib.suppress(OSError, TransportError):
            for item in resend:
                ws, sock = self._ws, self._sock
                if ws is None or sock is None:
                    break
                self._transmit(sock, ws.frame(item.frame))
                self._written(item, ws)
        for request in lost:
            deliver(request)

    def _poll(self) -> None:
        """The kernel's model, checked while connected: gone or dead fails pending requests."""
        self._polled(self._kernel_state())

    def _kernel_state(self) -> Any:
        if self.probe is None:
            return RuntimelibError("no probe")
        try:
            return self.probe()
        except RuntimelibError as exc:
            return exc

    def _reconnect(self, deliver: Deliver) -> None:
        self._suspect()
        with self._state:
            sock, self._sock = self._sock, None
            if self._ws is not None:
                # Gone even if no close came (no pong): senders wait for the next one.
                self._ws.closed = True
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
        plan = Reconnection(time.monotonic(), self.reconnect_timeout)
        last: BaseException | str = "no attempt yet"
        while not self._closing:
            final = plan.judge(self._kernel_state())
            if final is not None:
                self._end(final)
            # While other clients are counted connected, give the server a few waits to
            # notice this one is gone (and start keeping its output) before coming back.
            if plan.gap is None or plan.attempt >= 3:
                try:
                    self._open()
                    break
                except (ServerError, TransportError) as exc:
                    if refusal_is_final(exc):
                        self._end(plan.judge(exc) or exc)
                    last = exc
            delay = plan.wait(time.monotonic())
            if delay is None:
                self._end(plan.gave_up(last))
            else:
                time.sleep(delay)
        self.reconnects += 1
        log.info("reconnected to the kernel's websocket")
        self._gap = plan.gap
        if plan.gap is not None:
            deliver(OutputGap(plan.gap))

    def _end(self, error: BaseException) -> NoReturn:
        self._tell_dead(error)
        raise _Ended

    # -- closing -------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the websocket politely and stop the reader."""
        self._closing = True
        with self._state:
            ws, sock = self._ws, self._sock
            self._state.notify_all()
        if sock is not None:
            with contextlib.suppress(OSError):
                if ws is not None:
                    self._transmit(sock, ws.close())
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)
        if sock is not None:
            sock.close()


class _Ended(Exception):
    """The kernel is gone, or the server could not be had back: the reader stops."""
