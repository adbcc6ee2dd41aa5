"""Comm messages: shell to the kernel, iopub from it (messaging spec, "Custom Messages")."""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

from .base import Content

__all__ = ["CommClose", "CommMsg", "CommOpen"]


class CommOpen(Content, kw_only=True, frozen=True):
    """Open ``comm_id`` to ``target_name``; an unknown target is answered with comm_close."""

    msg_type: ClassVar[str] = "comm_open"
    comm_id: str
    target_name: str
    data: dict[str, Any] = {}
    target_module: str | msgspec.UnsetType | None = msgspec.UNSET


class CommMsg(Content, kw_only=True, frozen=True):
    """A message on an open comm."""

    msg_type: ClassVar[str] = "comm_msg"
    comm_id: str
    data: dict[str, Any] = {}


class CommClose(Content, kw_only=True, frozen=True):
    """Close a comm."""

    msg_type: ClassVar[str] = "comm_close"
    comm_id: str
    data: dict[str, Any] = {}
