"""HMAC signing and verification of messages, with bounded replay protection."""

from __future__ import annotations

import functools
import hmac
from collections import deque
from collections.abc import Iterable

from ..errors import ReplayedMessageError, SignatureError, SignatureSchemeError

__all__ = ["DEFAULT_REPLAY_WINDOW", "ReplayGuard", "Signer", "check_signature_scheme"]

#: How many recent signatures a receiver remembers to refuse replays (as jupyter_client does).
DEFAULT_REPLAY_WINDOW = 2**16

Part = bytes | bytearray | memoryview


@functools.lru_cache(maxsize=32)
def check_signature_scheme(scheme: str) -> str:
    """The hash name in an ``hmac-<name>`` scheme; SignatureSchemeError if HMAC cannot use it."""
    prefix, _, name = scheme.partition("-")
    if prefix != "hmac" or not name:
        raise SignatureSchemeError(f"signature scheme must be 'hmac-<hash>', not {scheme!r}")
    try:
        # Building a throwaway HMAC also rejects hashes HMAC cannot use (e.g. shake_*).
        hmac.new(b"check", digestmod=name).hexdigest()
    except (ValueError, TypeError) as exc:
        raise SignatureSchemeError(f"unknown hash in signature scheme {scheme!r}") from exc
    return name


class Signer:
    """Signs and verifies the four JSON parts of a message with ``hmac-<hash>``.

    An empty key turns signing off: the signature is ``b""`` and nothing is checked,
    which is what every Jupyter implementation does.
    """

    __slots__ = ("_hmac", "key", "scheme")

    def __init__(self, key: bytes, scheme: str = "hmac-sha256") -> None:
        self.key = bytes(key)
        self.scheme = scheme
        digest = check_signature_scheme(scheme)
        # Keyed once here; each signature starts from a copy of this state.
        self._hmac = hmac.new(self.key, digestmod=digest) if self.key else None

    @property
    def enabled(self) -> bool:
        """Whether messages are signed (the key is not empty)."""
        return self._hmac is not None

    def sign(self, parts: Iterable[Part]) -> bytes:
        """The lowercase hex signature of ``parts`` (the four JSON frames, in order)."""
        if self._hmac is None:
            return b""
        mac = self._hmac.copy()
        for part in parts:
            mac.update(part)
        return mac.hexdigest().encode("ascii")

    def verify(self, signature: Part, parts: Iterable[Part]) -> None:
        """Raise SignatureError unless ``signature`` matches ``parts``; a no-op when off."""
        if self._hmac is None:
            return
        if not signature:
            raise SignatureError("message is not signed")
        # compare_digest takes constant time over the expected length: no timing oracle.
        if not hmac.compare_digest(self.sign(parts), bytes(signature)):
            raise SignatureError("invalid signature")


class ReplayGuard:
    """Remembers the last ``window`` signatures; a signature seen again is a replay.

    Only verified signatures are recorded, so forged messages cannot push real ones out
    of the window, and memory stays bounded at ``window`` entries.
    """

    __slots__ = ("_order", "_seen", "window")

    def __init__(self, window: int = DEFAULT_REPLAY_WINDOW) -> None:
        if window < 1:
            raise ValueError("the replay window must hold at least one signature")
        self.window = window
        self._seen: set[bytes] = set()
        self._order: deque[bytes] = deque()

    def __len__(self) -> int:
        return len(self._seen)

    def check(self, signature: bytes) -> None:
        """Raise ReplayedMessageError if ``signature`` was seen, else remember it."""
        if signature in self._seen:
            raise ReplayedMessageError("signature already seen: replayed message")
        self._seen.add(signature)
        self._order.append(signature)
        if len(self._order) > self.window:
            self._seen.discard(self._order.popleft())
