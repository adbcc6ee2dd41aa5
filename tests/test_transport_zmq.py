"""The async ZeroMQ transport against a scripted peer on real sockets: a kernel's side made of
plain pyzmq sockets that sends exactly what a test needs, including what no real kernel sends
(a burst of unasked-for messages on shell)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import anyio
import pytest
import zmq

from runtimelib import AsyncKernelClient, ConnectionInfo
from runtimelib.errors import KernelDiedError, KernelTimeoutError
from runtimelib.messages import Content, KernelInfoReply, KernelInfoRequest, Message, Status
from runtimelib.protocol import Session
from runtimelib.transports import zmq as zmq_transport
from runtimelib.transports.zmq import recv_parts

pytestmark = pytest.mark.anyio

T = 10.0


class Peer:
    """The kernel's end of shell and iopub, driven by the test."""

    def __init__(self) -> None:
        self.info = ConnectionInfo.new()
        self.session = Session(self.info.key_bytes, self.info.signature_scheme)
        self.context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.shell = self.context.socket(zmq.ROUTER)
        self.shell.bind(self.info.shell_url)
        self.iopub = self.context.socket(zmq.PUB)
        self.iopub.bind(self.info.iopub_url)
        self.sockets = [self.shell, self.iopub]
        for channel in ("control", "stdin"):  # bound so the client's sockets connect
            sock = self.context.socket(zmq.ROUTER)
            sock.bind(self.info.endpoint(channel))
            self.sockets.append(sock)

    def request(self, timeout: float = T) -> Message[Content]:
        """The next message a client sent on shell."""
        assert self.shell.poll(int(timeout * 1000)), "no request reached the peer"
        return self.session.deserialize(recv_parts(self.shell), channel="shell")

    def reply(self, request: Message[Content], content: Content) -> None:
        self.shell.send_multipart(self.session.serialize(request.reply(content)))

    def close(self) -> None:
        for sock in self.sockets:
            sock.close(linger=0)
        self.context.term()


@pytest.fixture
def peer() -> Iterator[Peer]:
    p = Peer()
    try:
        yield p
    finally:
        p.close()


@pytest.mark.parametrize("epoll", [True, False], ids=["epoll", "a-task-per-socket"])
async def test_a_burst_on_shell_behind_a_send_is_delivered_whole(
    peer: Peer, epoll: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unasked-for messages pile up on shell while the event loop is blocked; then a send on
    that socket finds them. It delivers a batch at once and leaves the rest to the reader,
    which must be woken for it (the send consumed the socket's notification): all arrive,
    and the client keeps serving."""
    if not epoll:
        monkeypatch.setattr(zmq_transport.asynchronous, "_epoll", None)
    burst = 1000
    seen: list[Message[Content]] = []
    async with AsyncKernelClient(peer.info, ready_timeout=None, heartbeat_interval=None) as kc:
        kc.router.listeners.append(seen.append)
        # A first request tells the peer the client's routing identity.
        asking = anyio.create_task_group()
        async with asking:
            asking.start_soon(kc.kernel_info)
            request = await anyio.to_thread.run_sync(peer.request)
            peer.reply(request, KernelInfoReply(implementation="peer"))
        parent = request
        for _ in range(burst):
            peer.shell.send_multipart(
                peer.session.serialize(parent.reply(Status(execution_state="idle")))
            )
        time.sleep(0.5)  # the loop is blocked: the burst waits on the client's socket
        kc.comms.open("nobody-listens-here")  # a send on shell, before the loop runs again
        with anyio.fail_after(T):
            while len([m for m in seen if isinstance(m.content, Status)]) < burst:
                await anyio.sleep(0.01)
        # And the client still answers to new traffic.
        async with anyio.create_task_group() as tg:
            replies: list[KernelInfoReply] = []

            async def ask() -> None:
                replies.append(await kc.kernel_info(timeout=T))

            tg.start_soon(ask)
            again = await anyio.to_thread.run_sync(peer.request)
            while not isinstance(again.content, KernelInfoRequest):  # skip the comm_open
                again = await anyio.to_thread.run_sync(peer.request)
            peer.reply(again, KernelInfoReply(implementation="peer"))
    assert [r.implementation for r in replies] == ["peer"]
    assert sum(isinstance(m.content, Status) for m in seen) == burst


def _fill_shell_queue(kc: AsyncKernelClient) -> int:
    """Queue requests to a kernel that never reads them until the queue takes no more."""
    sent = 0
    while kc.transport.send_nowait(kc.session.message(KernelInfoRequest(), channel="shell")):
        sent += 1
        assert sent < 100_000, "the shell queue never filled"
    return sent


async def test_a_request_to_a_kernel_that_stopped_reading_times_out() -> None:
    """Nothing listens: the requests queue up to zmq's high-water mark, after which a
    request with a timeout must not wait for room past its deadline."""
    info = ConnectionInfo.new()
    async with AsyncKernelClient(info, ready_timeout=None, heartbeat_interval=None) as kc:
        assert _fill_shell_queue(kc) > 0
        with anyio.fail_after(T), pytest.raises(KernelTimeoutError):
            await kc.kernel_info(timeout=0.5)
        with anyio.fail_after(T), pytest.raises(KernelTimeoutError):
            await kc.execute("1", timeout=0.5)


async def test_a_request_stuck_behind_a_full_queue_fails_when_the_kernel_dies() -> None:
    """No timeout given, and the kernel is gone: the heartbeat declares it dead and the
    request waiting for room in the queue fails with KernelDiedError instead of hanging."""
    info = ConnectionInfo.new()
    async with AsyncKernelClient(
        info, ready_timeout=None, heartbeat_interval=0.2, heartbeat_misses=2
    ) as kc:
        assert _fill_shell_queue(kc) > 0
        with anyio.fail_after(T), pytest.raises(KernelDiedError):
            await kc.kernel_info()
        with anyio.fail_after(T), pytest.raises(KernelDiedError):
            await kc.execute("1")
