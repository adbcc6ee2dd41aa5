"""The startup handshake's two messages, without I/O (JEP 66, protocol 5.6).

Instead of being told five ports that someone else picked (and that another process may take
before it binds them), a kernel binds five ports of its own choosing and reports them: it
connects a DEALER to the launcher's registration socket (a ROUTER) and sends one signed frame
of JSON; the launcher answers with a signed acknowledgement, and the kernel disconnects.

The registration is not a full Jupyter message: after the delimiter come the signature and
the content only, and the signature covers the content alone. The specification leaves two
details open, settled here as xeus (the first kernels to do it) settles them: the ports are
sent as strings (integers are read too), and the acknowledgement's content is the launcher's
choice (here ``{"status": "ok"}``; a kernel checks only its signature).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from ..errors import RemoteProtocolError, SignatureError
from .session import DELIMITER
from .signing import Signer

__all__ = [
    "REGISTERED_CHANNELS",
    "acknowledgement",
    "check_acknowledgement",
    "read_registration",
    "registration",
]

#: The channels whose ports a kernel reports, in the order the specification lists them.
REGISTERED_CHANNELS = ("control", "shell", "stdin", "iopub", "hb")
#: A registration is a few hundred bytes; anything much larger is not one.
_MAX_CONTENT = 64 * 1024
_ACK = b'{"status":"ok"}'


def registration(signer: Signer, kernel_id: str, ports: Mapping[str, int]) -> list[bytes]:
    """The frames a kernel sends (after its DEALER's empty routing): its id and its ports."""
    content: dict[str, Any] = {"kernel_id": kernel_id}
    content.update((f"{name}_port", str(ports[name])) for name in REGISTERED_CHANNELS)
    body = msgspec.json.encode(content)
    return [DELIMITER, signer.sign([body]), body]


def read_registration(frames: Sequence[bytes], signer: Signer, kernel_id: str) -> dict[str, int]:
    """The ports a registration reports, checked: signed with the kernel's key, for the
    kernel ``kernel_id``, five ports in range. ``frames`` come after the routing identity.
    Anything else is a RemoteProtocolError saying what was wrong."""
    body = _signed_body(frames, signer, "registration")
    try:
        content = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise RemoteProtocolError(f"registration is not JSON: {exc}") from exc
    if not isinstance(content, dict):
        raise RemoteProtocolError("registration is not a JSON object")
    if content.get("kernel_id") != kernel_id:
        raise RemoteProtocolError(
            f"registration is for kernel {content.get('kernel_id')!r}, not {kernel_id!r}"
        )
    ports = {}
    for name in REGISTERED_CHANNELS:
        value = content.get(f"{name}_port")
        ports[name] = _port(name, value)
    return ports


def acknowledgement(signer: Signer) -> list[bytes]:
    """The frames the launcher answers a registration with (after the routing identity)."""
    return [DELIMITER, signer.sign([_ACK]), _ACK]


def check_acknowledgement(frames: Sequence[bytes], signer: Signer) -> None:
    """Raise RemoteProtocolError unless ``frames`` are a signed acknowledgement."""
    _signed_body(frames, signer, "acknowledgement")


def _signed_body(frames: Sequence[bytes], signer: Signer, what: str) -> bytes:
    # [<IDS|MSG>, signature, content]; a DEALER may see an empty routing frame first.
    parts = list(frames)
    while parts and parts[0] != DELIMITER:
        parts.pop(0)
    if len(parts) != 3:
        raise RemoteProtocolError(f"{what}: expected delimiter, signature and content")
    _, signature, body = parts
    if len(body) > _MAX_CONTENT:
        raise RemoteProtocolError(f"{what}: {len(body)} bytes is too large")
    try:
        signer.verify(signature, [body])
    except SignatureError as exc:
        raise RemoteProtocolError(f"{what}: {exc}") from exc
    return bytes(body)


def _port(name: str, value: object) -> int:
    # Strings, as xeus sends them; integers, as the connection file spells ports.
    if isinstance(value, str) and value.isdecimal() and len(value) <= 5:
        port = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        port = value
    else:
        raise RemoteProtocolError(f"registration: {name}_port is {value!r}, not a port")
    if not 0 < port <= 65535:
        raise RemoteProtocolError(f"registration: {name}_port {port} is out of range")
    return port
