"""The wire protocol without I/O: framing, signing, replay protection, the session codec,
and the startup handshake's two messages (registration.py)."""

from __future__ import annotations

from .session import DEFAULT_MAX_FRAME_SIZE, DELIMITER, Session
from .signing import DEFAULT_REPLAY_WINDOW, ReplayGuard, Signer

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "DEFAULT_REPLAY_WINDOW",
    "DELIMITER",
    "ReplayGuard",
    "Session",
    "Signer",
]
