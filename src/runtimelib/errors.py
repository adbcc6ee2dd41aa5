"""Every exception runtimelib raises, in one tree.

::

    RuntimelibError
    ├── ProtocolError                     the Jupyter messaging protocol was broken
    │   ├── LocalProtocolError            ... by us: we were asked to send something invalid
    │   └── RemoteProtocolError           ... by the peer: what arrived is not a valid message
    │       ├── FramingError              missing delimiter, too few frames
    │       ├── MessageTooLargeError      a frame beyond the configured size limit
    │       ├── SignatureError            HMAC signature missing or wrong
    │       │   └── ReplayedMessageError  a signature seen before
    │       └── MessageDecodeError        not UTF-8, not JSON, NaN, a part of the wrong type
    ├── SignatureSchemeError (ValueError) an ``hmac-*`` scheme hashlib does not know
    ├── ConnectionFileError               a connection file that cannot be read or written
    ├── KernelSpecError                   a kernelspec that cannot be used
    │   ├── NoSuchKernelError (LookupError)
    │   └── InvalidKernelNameError (ValueError) a name no kernelspec may have
    ├── TransportError                    a socket or websocket failed
    │   └── EncryptionError               the two ends disagree on CurveZMQ encryption
    ├── ServerError                       a Jupyter Server (or gateway) refused or failed
    │   ├── ServerAuthError               401/403: no token, or the wrong one
    │   ├── ServerNotFoundError (LookupError) 404: no such kernel, kernelspec or session
    │   ├── ServerConflictError           409: the request clashes with the kernel's state
    │   └── ServerUnavailableError        5xx, or the server cannot be reached at all
    ├── KernelTimeoutError (TimeoutError) the kernel did not answer in time
    ├── KernelProcessError                the kernel process misbehaved
    │   ├── KernelLaunchError             it could not be started, or exited during startup
    │   ├── KernelDiedError               it died while we depended on it
    │   └── KernelNotRunningError         a running kernel was named, but it is gone
    ├── KernelReplyError                  the kernel answered a request with an error reply
    └── CellExecutionError                a notebook cell raised (and errors were not allowed)
        └── CellTimeoutError (TimeoutError) a notebook cell ran past its timeout

Foreign exceptions (``zmq.ZMQError``, ``msgspec`` errors, ``OSError``) are translated into
this tree where they cross a layer boundary, with the original kept as ``__cause__``.
A kernel's error *reply* is data, not an exception.
"""

from __future__ import annotations

__all__ = [
    "CellExecutionError",
    "CellTimeoutError",
    "ConnectionFileError",
    "EncryptionError",
    "FramingError",
    "InvalidKernelNameError",
    "KernelDiedError",
    "KernelLaunchError",
    "KernelNotRunningError",
    "KernelProcessError",
    "KernelReplyError",
    "KernelSpecError",
    "KernelTimeoutError",
    "LocalProtocolError",
    "MessageDecodeError",
    "MessageTooLargeError",
    "NoSuchKernelError",
    "ProtocolError",
    "RemoteProtocolError",
    "ReplayedMessageError",
    "RuntimelibError",
    "ServerAuthError",
    "ServerConflictError",
    "ServerError",
    "ServerNotFoundError",
    "ServerUnavailableError",
    "SignatureError",
    "SignatureSchemeError",
    "TransportError",
    "status_error",
]


class RuntimelibError(Exception):
    """Base class of every error raised by runtimelib."""


class ProtocolError(RuntimelibError):
    """The Jupyter messaging protocol was violated."""


class LocalProtocolError(ProtocolError):
    """We were asked to send something the protocol does not allow."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something that is not a valid Jupyter message.

    ``parent_id`` is the msg_id of the request the message answered, where that could be
    read (a message too large to accept): the request fails with this error.
    """

    def __init__(self, *args: object, parent_id: str | None = None) -> None:
        super().__init__(*args)
        self.parent_id = parent_id


class FramingError(RemoteProtocolError):
    """The multipart frames do not have the shape of a Jupyter message."""


class MessageTooLargeError(RemoteProtocolError):
    """A frame is larger than the limit the receiver was configured with (``max_frame_size``
    of the session, or of the client: raise it to accept larger outputs)."""


class SignatureError(RemoteProtocolError):
    """The HMAC signature is missing or does not match the message."""


class ReplayedMessageError(SignatureError):
    """The signature was already seen: the message is a replay."""


class MessageDecodeError(RemoteProtocolError):
    """A JSON part is not UTF-8, not valid JSON, or not of the type the protocol requires."""


class SignatureSchemeError(RuntimelibError, ValueError):
    """The signature scheme is not ``hmac-<name>`` for a hash hashlib provides."""


class ConnectionFileError(RuntimelibError):
    """A connection file could not be read, parsed or written."""


class KernelSpecError(RuntimelibError):
    """A kernelspec is invalid or cannot be used."""


class NoSuchKernelError(KernelSpecError, LookupError):
    """No kernelspec of that name is installed."""


class InvalidKernelNameError(KernelSpecError, ValueError):
    """A kernel name outside ``[a-z0-9._-]+`` (or ``.``/``..``): no kernelspec can have it."""


class TransportError(RuntimelibError):
    """A socket, websocket or other transport failed."""


class EncryptionError(TransportError):
    """Encryption cannot be had, or the two ends disagree on it: the kernel does not speak
    CurveZMQ though its spec says so, the keys are stale, or libzmq lacks CURVE."""


class ServerError(RuntimelibError):
    """A Jupyter Server or gateway answered with an error, or could not be reached.

    ``status`` is the HTTP status (0 when there was no answer); the message carries the
    server's own reason when it gave one, never the token.
    """

    def __init__(self, message: str, *, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class ServerAuthError(ServerError):
    """The server refused the token (401) or the token may not do this (403)."""


class ServerNotFoundError(ServerError, LookupError):
    """The server has no such kernel, kernelspec or session (404)."""


class ServerConflictError(ServerError):
    """The request clashes with the kernel's current state (409)."""


class ServerUnavailableError(ServerError):
    """The server failed (5xx), timed out, or could not be reached."""


class KernelTimeoutError(RuntimelibError, TimeoutError):
    """The kernel did not answer within the allowed time."""


class KernelProcessError(RuntimelibError):
    """The kernel process could not be started or stopped as expected."""


class KernelLaunchError(KernelProcessError):
    """The kernel could not be started, or exited before it was ready."""


class KernelDiedError(KernelProcessError):
    """The kernel died while a request was pending or a client depended on it."""


class KernelNotRunningError(KernelProcessError):
    """The kernel named (by id or connection file) is not running: its file outlived it."""


class KernelReplyError(RuntimelibError):
    """The kernel answered a request with an error reply, where the caller needs a result
    (a subshell id, say); ``ename`` and ``evalue`` are the kernel's."""

    def __init__(self, message: str, *, ename: str = "", evalue: str = "") -> None:
        super().__init__(message)
        self.ename = ename
        self.evalue = evalue


class CellExecutionError(RuntimelibError):
    """A notebook cell raised an error, and errors were not allowed for it.

    ``cell_index`` is the cell's position in the notebook, counted from 0 (the message counts
    from 1, as people do, and names the ``In [n]`` prompt); ``ename``, ``evalue`` and
    ``traceback`` are the kernel's error (empty when the cell timed out without one).
    """

    def __init__(
        self,
        message: str,
        *,
        cell_index: int,
        ename: str = "",
        evalue: str = "",
        traceback: list[str] | None = None,
    ) -> None:
        super().__init__(message)
        self.cell_index = cell_index
        self.ename = ename
        self.evalue = evalue
        self.traceback = list(traceback or [])


class CellTimeoutError(CellExecutionError, TimeoutError):
    """A notebook cell ran longer than its timeout (the kernel was interrupted)."""


def status_error(status: int, body: bytes, what: str) -> ServerError | None:
    """The error a server's HTTP answer ``status`` to ``what`` means (None for success):
    401 and 403 ServerAuthError, 404 ServerNotFoundError, 409 ServerConflictError, 5xx
    ServerUnavailableError; the server's own reason (its JSON ``message``) is kept."""
    if status < 400:
        return None
    reason = _server_reason(body)
    detail = f": {reason}" if reason else ""
    if status in (401, 403):
        word = "refused the token" if status == 401 else "does not allow this with this token"
        return ServerAuthError(f"{what}: the server {word} ({status}){detail}", status=status)
    if status == 404:
        return ServerNotFoundError(f"{what}: not found (404){detail}", status=status)
    if status == 409:
        return ServerConflictError(f"{what}: conflict (409){detail}", status=status)
    if status >= 500:
        return ServerUnavailableError(
            f"{what}: the server failed ({status}){detail}", status=status
        )
    return ServerError(f"{what}: the server answered {status}{detail}", status=status)


def _server_reason(body: bytes) -> str:
    """A server's reason for an error: its JSON ``message`` (or ``reason``), else nothing;
    bounded, so a hostile server cannot flood a log line."""
    if not body or len(body) > 65536:
        return ""
    import json  # only on this error path

    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ""
    if isinstance(value, dict):
        for key in ("message", "reason"):
            text = value.get(key)
            if isinstance(text, str) and text:
                return text[:300]
    return ""
