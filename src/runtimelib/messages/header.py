"""The message header, and the ids and timestamps new headers get."""

from __future__ import annotations

import getpass
import itertools
import os
import uuid
from datetime import datetime, timezone

import msgspec

__all__ = ["PROTOCOL_VERSION", "SUBSHELL_PROTOCOL_VERSION", "Header", "new_id"]

#: The messaging protocol version runtimelib writes in headers.
PROTOCOL_VERSION = "5.4"
#: The version a header carries once it addresses a subshell (protocol 5.5, JEP 91).
SUBSHELL_PROTOCOL_VERSION = "5.5"


class _Ids:
    """A process-unique prefix plus a counter: unique ids at a fraction of uuid4's cost."""

    def __init__(self) -> None:
        self.reset()
        if hasattr(os, "register_at_fork"):
            # A forked child must not repeat its parent's ids.
            os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self.prefix = uuid.uuid4().hex
        self.counter = itertools.count(1)

    def next(self) -> str:
        return f"{self.prefix}_{next(self.counter)}"


_IDS = _Ids()


def new_id() -> str:
    """A new message id, unique across processes."""
    return _IDS.next()


def _default_username() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user database entry, e.g. in some containers
        return "username"


DEFAULT_USERNAME = _default_username()


class Header(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """A message header (messaging spec, "General Message Format").

    ``date`` is None when a peer left it out or sent something that is not a date.
    ``subshell_id`` (protocol 5.5) is written only when set.
    """

    msg_id: str
    session: str
    username: str
    date: datetime | None = None
    msg_type: str
    version: str
    subshell_id: str | None = None

    @classmethod
    def new(
        cls,
        msg_type: str,
        session: str,
        *,
        username: str | None = None,
        subshell_id: str | None = None,
    ) -> Header:
        """A fresh header: new msg_id, the current UTC time."""
        return cls(
            msg_id=_IDS.next(),
            session=session,
            username=DEFAULT_USERNAME if username is None else username,
            date=datetime.now(timezone.utc),
            msg_type=msg_type,
            version=PROTOCOL_VERSION if subshell_id is None else SUBSHELL_PROTOCOL_VERSION,
            subshell_id=subshell_id,
        )
