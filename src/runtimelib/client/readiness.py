"""Deciding when a kernel is ready to be talked to (sans-IO)."""

from __future__ import annotations

from ..messages import Content, KernelInfoReply, KernelInfoRequest, Message
from ..protocol import Session

__all__ = ["Readiness"]


class Readiness:
    """Decides when a starting kernel is ready, from the messages it sends (sans-IO).

    Ready means the kernel answered a kernel_info_request and we have heard it on iopub, so
    nothing it publishes from now on is lost to the subscription still being set up
    (PROTOCOL.md, "Startup and readiness"). Kernels with an XPUB iopub say so at once with
    ``iopub_welcome`` (JEP 65); for the others each kernel_info_request makes them publish
    ``busy``/``idle``, so we ask again until iopub speaks.
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self.sent: set[str] = set()
        self.reply: KernelInfoReply | None = None
        self.heard_iopub = False

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
