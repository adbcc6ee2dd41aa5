"""One kernel websocket without I/O: bytes in, messages and events out; messages in, bytes out.

wsproto runs the websocket protocol (handshake, framing, ping and close); the codec
(protocol/websocket.py) turns frames into messages. Both transports (asynchronous.py and
blocking.py) drive this object over their own sockets and share the rules written here:

- the handshake offers the v1 subprotocol (unless legacy is asked for) and falls back to the
  legacy format when the server selects none; a refusal is a typed ServerError (401/403 the
  token, 404 no such kernel);
- a message larger than the session's frame limit is refused before it is gathered;
- a status ``restarting`` or ``dead`` with no parent is the server's own word on the kernel
  (its restarter), not a kernel's status;
- the server's rate-limit notice on iopub means outputs were dropped;
- reconnecting waits on a jittered, capped exponential schedule (``backoff``).
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError as WsLocalProtocolError
from wsproto.utilities import RemoteProtocolError as WsRemoteProtocolError

from ...errors import (
    KernelDiedError,
    MessageTooLargeError,
    RemoteProtocolError,
    ServerAuthError,
    ServerError,
    ServerNotFoundError,
    TransportError,
    status_error,
)
from ...messages import Content, Message, Status
from ...protocol import Session
from ...protocol.websocket import V1_SUBPROTOCOL, WebsocketCodec
from ..base import Deliver, RequestLost

log = logging.getLogger("runtimelib.transport")

__all__ = [
    "BlockingProbe",
    "Closed",
    "Endpoint",
    "KernelState",
    "KernelWebsocket",
    "Opened",
    "Outgoing",
    "Probe",
    "Reconnection",
    "WebsocketCore",
    "backoff",
    "kernel_end",
    "quick_ack",
    "refusal_is_final",
    "server_word",
]


@dataclass
class Opened:
    """The handshake succeeded; ``subprotocol`` is the one the server selected (None: legacy)."""

    subprotocol: str | None


@dataclass
class Closed:
    """The websocket is closed (by the server, or it went away)."""

    code: int = 1006
    reason: str = ""


@dataclass(frozen=True)
class Endpoint:
    """Where a kernel's websocket is and how to open it."""

    host: str
    port: int
    #: The request target: ``<prefix>/api/kernels/<id>/channels?session_id=<id>``.
    target: str
    headers: dict[str, str]
    #: TLS (wss) when set.
    ssl_context: ssl.SSLContext | None = None
    #: Offer no subprotocol: the legacy format.
    legacy: bool = False

    @property
    def authority(self) -> str:
        return f"{self.host}:{self.port}" if ":" not in self.host else f"[{self.host}]:{self.port}"


@dataclass(frozen=True)
class KernelState:
    """What the server's kernel model says, for deciding what a dropped websocket means."""

    execution_state: str
    #: Websockets connected to the kernel (-1: the server does not say).
    connections: int = -1


#: Asks the server for the kernel's model: raises ServerNotFoundError when the kernel is gone.
Probe = Callable[[], Awaitable[KernelState]]
BlockingProbe = Callable[[], KernelState]


@dataclass
class _Refusal:
    status: int
    body: bytearray = field(default_factory=bytearray)


class KernelWebsocket:
    """The client side of one kernel websocket, sans-IO.

    ``handshake()`` gives the bytes that open it; ``receive_data(data)`` takes what arrived
    (``b""`` for the end of the stream) and returns Opened, messages, RemoteProtocolErrors
    for frames that were not messages, and Closed; ``send(message)`` gives the bytes of a
    message; ``outgoing()`` what the protocol itself must send (pongs, the close reply).
    """

    def __init__(self, session: Session, endpoint: Endpoint) -> None:
        self.session = session
        self.endpoint = endpoint
        self.codec: WebsocketCodec | None = None
        self._ws = WSConnection(ConnectionType.CLIENT)
        self._pending = bytearray()
        self._refusal: _Refusal | None = None
        self._partial: list[bytes | str] = []
        self._partial_size = 0
        self._skipping = False
        self.closed = False

    @property
    def open(self) -> bool:
        return self.codec is not None and not self.closed

    @property
    def subprotocol(self) -> str | None:
        return None if self.codec is None or not self.codec.v1 else V1_SUBPROTOCOL

    def handshake(self) -> bytes:
        """The HTTP upgrade request, the token in its header only."""
        endpoint = self.endpoint
        return self._ws.send(
            Request(
                host=endpoint.authority,
                target=endpoint.target,
                subprotocols=[] if endpoint.legacy else [V1_SUBPROTOCOL],
                extra_headers=[(k.encode(), v.encode()) for k, v in endpoint.headers.items()],
            )
        )

    def encode(self, message: Message[Any]) -> bytes | str:
        """The frame of one message, in the format the server chose (see ``frame``)."""
        if self.codec is None:
            raise TransportError("the websocket was never opened")
        return self.codec.encode(message)

    def frame(self, frame: bytes | str) -> bytes:
        """The bytes that send ``frame`` (TransportError once the websocket is closed).

        A frame encoded for one connection is good for the next one to the same server, so
        messages queued while reconnecting are sent as they were encoded."""
        if self.closed or self.codec is None:
            raise TransportError("the websocket is not open")
        event = TextMessage(data=frame) if isinstance(frame, str) else BytesMessage(data=frame)
        return self._ws.send(event)

    def send(self, message: Message[Any]) -> bytes:
        """The bytes of one message."""
        return self.frame(self.encode(message))

    def ping(self, payload: bytes = b"") -> bytes:
        return self._ws.send(Ping(payload=payload)) if self.open else b""

    def close(self) -> bytes:
        """The bytes that close the websocket politely (none if it is not open)."""
        if not self.open:
            self.closed = True
            return b""
        self.closed = True
        try:
            return self._ws.send(CloseConnection(code=1000))
        except WsLocalProtocolError:
            return b""

    def outgoing(self) -> bytes:
        """What the protocol must send now (pongs, the reply to a close)."""
        data, self._pending = bytes(self._pending), bytearray()
        return data

    def receive_data(self, data: bytes) -> list[Any]:
        """Feed bytes (``b""``: the peer closed); the events and messages they complete."""
        if self.closed and not data:
            return []
        try:
            self._ws.receive_data(data or None)
        except WsRemoteProtocolError as exc:
            self.closed = True
            return [Closed(1002, f"websocket protocol error: {exc}")]
        out: list[Any] = []
        try:
            for event in self._ws.events():
                self._handle(event, out)
        except WsRemoteProtocolError as exc:
            self.closed = True
            out.append(Closed(1002, f"websocket protocol error: {exc}"))
        if not data and not self.closed:
            self.closed = True
            out.append(Closed())
        return out

    def _handle(self, event: Any, out: list[Any]) -> None:
        if isinstance(event, (TextMessage, BytesMessage)):
            self._gather(event, out)
        elif isinstance(event, Ping):
            self._pending += self._ws.send(event.response())
        elif isinstance(event, AcceptConnection):
            self.codec = WebsocketCodec(self.session, event.subprotocol)
            out.append(Opened(event.subprotocol))
        elif isinstance(event, RejectConnection):
            self._refusal = _Refusal(event.status_code)
            if not event.has_body:
                raise self._refused()
        elif isinstance(event, RejectData):
            assert self._refusal is not None
            if len(self._refusal.body) < 65536:
                self._refusal.body += event.data
            if event.body_finished:
                raise self._refused()
        elif isinstance(event, CloseConnection):
            if not self.closed:
                with contextlib.suppress(WsLocalProtocolError):
                    self._pending += self._ws.send(event.response())
            self.closed = True
            out.append(Closed(event.code, event.reason or ""))
        elif isinstance(event, Pong):
            out.append(event)

    def _gather(self, event: TextMessage | BytesMessage, out: list[Any]) -> None:
        """Join a message's fragments, refusing one past the frame limit as it grows (the
        rest of its fragments are skipped; the websocket stays usable)."""
        if self._skipping:
            self._skipping = not event.message_finished
            return
        self._partial.append(bytes(event.data) if isinstance(event.data, bytearray) else event.data)
        self._partial_size += len(event.data)
        if self._partial_size > self.session.max_frame_size + 65536:
            self._partial.clear()
            self._partial_size = 0
            self._skipping = not event.message_finished
            out.append(_TooLarge(self.session.max_frame_size))
            return
        if not event.message_finished:
            return
        pieces, self._partial = self._partial, []
        self._partial_size = 0
        frame: Any = pieces[0] if len(pieces) == 1 else type(pieces[0])().join(pieces)  # type: ignore[arg-type]
        assert self.codec is not None
        try:
            out.append(self.codec.decode(frame))
        except RemoteProtocolError as exc:
            out.append(exc)

    def _refused(self) -> ServerError:
        refusal = self._refusal
        assert refusal is not None
        self.closed = True
        what = "open the kernel's websocket"
        error = status_error(refusal.status, bytes(refusal.body), what)
        return error or ServerError(f"{what}: the server answered {refusal.status}")


class _TooLarge(MessageTooLargeError):
    def __init__(self, limit: int) -> None:
        super().__init__(
            f"a websocket message of the server is larger than the limit of {limit} bytes"
            " (max_frame_size)"
        )


def server_word(message: Message[Content]) -> KernelDiedError | None:
    """The error a server's own status message means for pending requests, if it is one:
    ``restarting`` (its restarter replaced a dead kernel) or ``dead`` (it gave up)."""
    if message.channel != "iopub" or message.parent_header is not None:
        return None
    content = message.content
    if not isinstance(content, Status):
        return None
    if content.execution_state == "restarting":
        return KernelDiedError("the kernel died and the server restarted it")
    if content.execution_state == "dead":
        return KernelDiedError("the kernel died and the server could not restart it")
    return None


def kernel_end(state: KernelState | BaseException) -> KernelDiedError | None:
    """What the kernel's model (or the failure to get it) says of the kernel: gone from the
    server or dead is the error for its pending requests; anything else, nothing."""
    if isinstance(state, ServerNotFoundError):
        return KernelDiedError("the kernel is no longer on the server (shut down or culled)")
    if isinstance(state, KernelState) and state.execution_state == "dead":
        return KernelDiedError("the server says the kernel is dead")
    return None


def refusal_is_final(error: BaseException) -> bool:
    """Whether reconnecting cannot help: the token is refused or the kernel is gone."""
    return isinstance(error, (ServerAuthError, ServerNotFoundError))


def backoff(attempt: int, *, first: float = 0.1, cap: float = 5.0) -> float:
    """How long to wait before reconnect ``attempt`` (0, 1, ...): doubling from ``first`` up
    to ``cap``, each wait drawn between half and all of it, so clients that lost the same
    server do not all come back at the same instant."""
    ceiling: float = min(cap, first * 2.0 ** min(attempt, 30))
    return ceiling * (0.5 + random.random() / 2)


class Reconnection:
    """The decisions of one reconnection after the websocket dropped, shared by both
    transports: what the kernel's model means, whether output may have been lost, how long
    to wait before the next attempt, and when to give up.

    The server keeps a kernel's output for a client that reconnects with the same session id
    only while no other websocket is connected to that kernel: a count above zero before this
    client is back means what the kernel sent meanwhile may not be replayed.
    """

    def __init__(self, started: float, timeout: float) -> None:
        self.started = started
        self.timeout = timeout
        self.attempt = 0
        #: Why output may be missing after this reconnection (None: the server replays it).
        self.gap: str | None = None

    def judge(self, state: KernelState | BaseException) -> BaseException | None:
        """The error that ends the reconnection (the kernel is gone or dead, the token is
        refused), or None to go on. ``state`` is the kernel's model, or why it could not be
        had."""
        if isinstance(state, ServerAuthError):
            return state
        end = kernel_end(state)
        if end is not None or not isinstance(state, KernelState):
            return end  # with no model, the server is unreachable for now: keep trying
        self.gap = (
            "the connection to the server dropped while another client was connected to the"
            " kernel, so the server may not have kept this client's output"
            if state.connections > 0
            else None
        )
        return None

    def wait(self, now: float) -> float | None:
        """How long to wait before the next attempt; None when it is time to give up."""
        left = self.started + self.timeout - now
        if left <= 0:
            return None
        delay = backoff(self.attempt)
        self.attempt += 1
        return min(delay, left)

    def gave_up(self, reason: BaseException | str) -> TransportError:
        return TransportError(
            f"lost the connection to the server and could not reconnect in {self.timeout:g} s"
            f" ({reason})"
        )


def quick_ack(sock: Any) -> None:
    """Acknowledge what arrived at once (Linux re-enables delayed ACKs after every read).

    Jupyter Server writes each message to the websocket as it comes, with Nagle's algorithm
    on: a second small message waits for the ACK of the first, and a client delaying its ACK
    (40 ms on Linux) makes every request that is answered with several messages take 40 ms
    longer. Acknowledging at once lets the server's next message go straight out.
    """
    if _QUICKACK is not None and sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)


_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)


#: Requests a kernel answers without changing anything: sent again when one went out just as
#: the websocket dropped and got no answer.
IDEMPOTENT = frozenset(
    {
        "kernel_info_request",
        "complete_request",
        "inspect_request",
        "history_request",
        "is_complete_request",
        "comm_info_request",
    }
)
#: How many sent and unanswered requests are remembered for a drop (the newest).
MAX_UNANSWERED = 1000
#: How long after a reconnection the server's replay is given before unanswered requests
#: are judged.
SETTLE = 1.0


@dataclass(frozen=True)
class Outgoing:
    """A frame on its way out; requests carry their id and type, to be judged after a drop."""

    frame: bytes | str
    msg_id: str | None
    msg_type: str


class WebsocketCore:
    """What both websocket transports hold and decide alike: settings, the kernel's end as
    told to the client, and what each received event means."""

    def __init__(
        self,
        endpoint: Endpoint,
        session: Session,
        *,
        open_timeout: float = 30.0,
        reconnect_timeout: float = 60.0,
        ping_interval: float = 10.0,
        ping_timeout: float = 20.0,
        poll_interval: float = 5.0,
    ) -> None:
        self.endpoint = endpoint
        self.session = session
        self.open_timeout = open_timeout
        self.reconnect_timeout = reconnect_timeout
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.poll_interval = poll_interval
        self._ws: KernelWebsocket | None = None
        self._last_pong = 0.0
        self._closing = False
        #: The end of the kernel, once known; told to ``dead`` when it is set.
        self._failure: BaseException | None = None
        self._dead: Callable[[BaseException], None] | None = None
        self._alive: Callable[[], None] | None = None
        #: How many times the websocket was reopened.
        self.reconnects = 0
        self._unanswered: dict[str, Outgoing] = {}
        self._suspected: dict[str, Outgoing] = {}

    @property
    def subprotocol(self) -> str | None:
        """The format the server chose: the v1 subprotocol, or None (legacy)."""
        return None if self._ws is None else self._ws.subprotocol

    def _encode(self, message: Message[Any]) -> Outgoing:
        if self._closing:
            raise TransportError("the transport is closed")
        if self._ws is None:
            raise TransportError("the websocket was never opened")
        frame = self._ws.encode(message)
        tracked = message.channel in ("shell", "control") and message.msg_type.endswith("_request")
        return Outgoing(frame, message.msg_id if tracked else None, message.msg_type)

    def _written(self, item: Outgoing, ws: KernelWebsocket) -> None:
        """A request went out on ``ws``: until anything answers it, it may have been lost
        with that websocket (a suspect at once if ``ws`` is already gone)."""
        if item.msg_id is None:
            return
        unanswered = self._unanswered if ws is self._ws and ws.open else self._suspected
        unanswered[item.msg_id] = item
        if len(unanswered) > MAX_UNANSWERED:
            del unanswered[next(iter(unanswered))]

    def _suspect(self) -> None:
        """The websocket dropped: the requests written to it and not answered yet are
        suspects until the server's replay answers them (see ``_judge``)."""
        self._suspected.update(self._unanswered)
        self._unanswered = {}

    def _judge(
        self, state: KernelState | BaseException, gap: str | None
    ) -> tuple[list[Outgoing], list[RequestLost]]:
        """What to do, once the server's replay has had time to come, with the requests
        that went out just before a drop and still have no answer: a request that changes
        nothing is sent again; any other fails at once when the kernel's model says it is
        idle (so it never started on it) and the server kept everything for this client
        (so no answer was lost); otherwise it is left to its timeout."""
        suspects, self._suspected = self._suspected, {}
        if not suspects:
            return [], []
        idle = isinstance(state, KernelState) and state.execution_state == "idle"
        resend = [item for item in suspects.values() if item.msg_type in IDEMPOTENT]
        lost = [
            RequestLost(
                msg_id,
                TransportError(
                    f"the {item.msg_type} went out just as the connection to the server"
                    " dropped and never reached the kernel (not sent again: running it twice"
                    " could do harm)"
                ),
            )
            for msg_id, item in suspects.items()
            if item.msg_type not in IDEMPOTENT and idle and gap is None
        ]
        return resend, lost

    def _handle(self, events: list[Any], deliver: Deliver, now: float) -> bool:
        """Deliver messages and note pongs; True once the websocket is closed."""
        for event in events:
            if isinstance(event, Message):
                parent = event.parent_id
                if parent:
                    self._unanswered.pop(parent, None)
                    if self._suspected:
                        self._suspected.pop(parent, None)
                deliver(event)
                word = server_word(event)
                if word is not None:
                    self._tell_dead(word)
                    if event.content.execution_state == "restarting":
                        self._tell_alive()  # the restarted kernel takes requests again
            elif isinstance(event, RemoteProtocolError):
                deliver(event)
            elif isinstance(event, Closed):
                log.info("the kernel's websocket closed (%s %s)", event.code, event.reason)
                return True
            elif isinstance(event, Pong):
                self._last_pong = now
        return False

    def _polled(self, state: KernelState | BaseException) -> None:
        """The kernel's model as checked while connected: gone or dead fails pending
        requests (once)."""
        end = kernel_end(state)
        if end is not None and self._failure is None:
            self._tell_dead(end)

    def _pong_overdue(self, now: float) -> bool:
        return now - self._last_pong > self.ping_interval + self.ping_timeout

    def _tell_dead(self, error: BaseException) -> None:
        self._failure = error
        if self._dead is not None:
            self._dead(error)

    def _tell_alive(self) -> None:
        self._failure = None
        if self._alive is not None:
            self._alive()
