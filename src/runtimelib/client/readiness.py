"""Deciding when a kernel is ready to be talked to (sans-IO)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..messages import Content, KernelInfoReply, KernelInfoRequest, Message
from ..protocol import Session

__all__ = ["Readiness"]


class Readiness:
    """Decides when a starting kernel is ready, from the messages it sends (sans-IO).

    Ready means the kernel answered a kernel_info_request and we have heard it on iopub, so
    nothing it publishes from now on is lost to the subscription still being set up
    (PROTOCOL.md, "Startup and readiness"). Kernels with an XPUB iopub say so at once with
    ``iopub_welcome`` (JEP 65); for the others each kernel_info_request makes them publish
    ``busy``/``idle``, so we ask again until iopub speaks: every 0.1 s once the kernel has
    answered, every second before. For a ``new_kernel`` (after a restart) only its own
    ``iopub_welcome`` counts: a late message of the old kernel proves nothing.
    """

    def __init__(
        self, session: Session, *, new_kernel: bool = False, received: Iterable[Message[Any]] = ()
    ) -> None:
        """``received``: what the client already holds; iopub heard there counts."""
        self.session = session
        self.new_kernel = new_kernel
        self.sent: set[str] = set()
        self.reply: KernelInfoReply | None = None
        self.heard_iopub = not new_kernel and any(m.channel == "iopub" for m in received)

    @property
    def resend_after(self) -> float:
        """How long to wait for a reply, or for iopub, before asking again."""
        return 0.1 if self.reply is not None else 1.0

    def feed(self, message: Message[Content]) -> None:
        """Feed a message that answers one of our requests (shell) or came on iopub."""
        if message.channel == "shell":
            self.on_shell(message)
        else:
            self.on_iopub(message)

    def heard_unasked(self, message: Message[Content]) -> bool:
        """Feed any message the client receives (iopub_welcome has no parent, so it answers
        none of our requests); True if it proves iopub is live, and the waiter should hear
        of it now rather than at the next resend."""
        if message.channel != "iopub" or message.parent_id in self.sent:
            return False
        if self.new_kernel and message.msg_type != "iopub_welcome":
            return False
        self.on_iopub(message)
        return True

    def request(self) -> Message[KernelInfoRequest]:
        """The next kernel_info_request to send on shell."""
        message = self.session.message(KernelInfoRequest(), channel="shell")
        self.sent.add(message.msg_id)
        return message

    def on_shell(self, message: Message[Content]) -> None:
        """Feed a message received on shell."""
        if message.parent_id in self.sent and isinstance(message.content, KernelInfoReply):
            self.reply = message.content

    def on_iopub(self, message: Message[Content]) -> None:
        """Feed a message received on iopub."""
        self.heard_iopub = True

    @property
    def ready(self) -> bool:
        """Whether the kernel answered and iopub is live."""
        return self.reply is not None and self.heard_iopub
