"""The blocking client reads in whichever thread waits: threads sharing one client, Ctrl-C
in the middle of a read, a handler that waits for a reply from inside a delivery, and
closing the client under a waiting thread."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from runtimelib import KernelClient, KernelManager
from runtimelib.errors import TransportError
from runtimelib.messages import Content, KernelInfoReply, Message, Status, Stream

T = 30.0

#: One stream message per line (flushed), sent as fast as the kernel can.
FLOOD_LINES = 20_000
FLOOD = f"for i in range({FLOOD_LINES}): print(i, flush=True)"


@pytest.fixture
def own_kernel(jupyter_env: Any, assert_gone: list[int]) -> Iterator[KernelManager]:
    with KernelManager("runtimelib-python") as km:
        assert km.pid is not None
        assert_gone.append(km.pid)
        yield km


@pytest.fixture
def dropped(caplog: pytest.LogCaptureFixture) -> Iterator[list[str]]:
    """Warnings about messages the client could not read (a torn multipart message)."""
    caplog.set_level(logging.WARNING, logger="runtimelib.transport")
    lines: list[str] = []
    yield lines
    lines.extend(r.getMessage() for r in caplog.records if "malformed" in r.getMessage())


def test_threads_share_one_client(own_kernel: KernelManager) -> None:
    """Requests from six threads at once, each waiting (and reading) for its own replies."""

    def infos() -> int:
        replies = [client.kernel_info(timeout=T) for _ in range(60)]
        assert all(isinstance(r, KernelInfoReply) for r in replies)
        return len(replies)

    def prints(tag: str) -> list[str]:
        return [client.execute(f"print('{tag}', {i})", timeout=T).stdout for i in range(25)]

    with own_kernel.client() as client, ThreadPoolExecutor(6) as pool:
        counts = [pool.submit(infos) for _ in range(4)]
        outs = {tag: pool.submit(prints, tag) for tag in ("a", "b")}
        assert [c.result(T) for c in counts] == [60] * 4
        for tag, future in outs.items():
            assert future.result(T) == [f"{tag} {i}\n" for i in range(25)]


def _interrupted_flood(kc: KernelClient) -> int:
    """Run FLOOD, sending Ctrl-C from a listener in the main thread once 1,000 lines were
    delivered, that is, while the waiting main thread delivers a batch it read (it falls
    behind first, so the batches are full). Returns the lines the listener saw in all."""
    main = threading.current_thread()
    lines = 0
    sent = False
    idle = threading.Event()

    flood: list[str | None] = []  # the execute's msg_id, from its outputs

    def count(message: Message[Content]) -> None:
        nonlocal lines, sent
        if message.content == Status(execution_state="idle") and message.parent_id in flood:
            idle.set()
        if not isinstance(message.content, Stream):
            return
        flood[:] = [message.parent_id]
        lines += message.content.text.count("\n")
        if threading.current_thread() is not main or sent:
            return
        if lines < 1000:
            time.sleep(0.001)
        else:
            sent = True
            os.kill(os.getpid(), signal.SIGINT)

    kc.router.listeners.append(count)
    try:
        with pytest.raises(KeyboardInterrupt):
            kc.execute(FLOOD, timeout=T)
        # The rest of the flood is read by the transport's thread.
        assert idle.wait(T)
    finally:
        kc.router.listeners.remove(count)
    return lines


def test_ctrl_c_mid_read_loses_no_message(own_kernel: KernelManager, dropped: list[str]) -> None:
    """KeyboardInterrupt ends the execute that was reading, but every message read is
    delivered and none is torn: the client goes on as before."""
    assert threading.current_thread() is threading.main_thread()
    with own_kernel.client() as kc:
        for round in range(3):
            assert _interrupted_flood(kc) == FLOOD_LINES
            assert kc.execute(f"print('after', {round})", timeout=T).stdout == f"after {round}\n"
    assert dropped == []


def test_ctrl_c_handler_runs_after_the_read(own_kernel: KernelManager) -> None:
    """A handler that does not raise runs (deferred past each read) and nothing is lost."""
    calls: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: calls.append(signum))
    stop = threading.Event()

    def keep_interrupting() -> None:
        while not stop.wait(0.02):
            os.kill(os.getpid(), signal.SIGINT)

    try:
        with own_kernel.client() as kc:
            sender = threading.Thread(target=keep_interrupting)
            sender.start()
            try:
                result = kc.execute(FLOOD, timeout=T)
            finally:
                stop.set()
                sender.join()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert result.stdout.count("\n") == FLOOD_LINES
    assert calls
    assert set(calls) == {signal.SIGINT}


#: ipykernel opens a comm to the client's target during the execute.
KERNEL_OPENS = """
from comm import create_comm
kernel_comm = create_comm(target_name="asks-back", data={"from": "kernel"})
"""


def test_handler_may_wait_for_a_reply_inside_a_delivery(
    jupyter_env: Any, assert_gone: list[int]
) -> None:
    """A comm target's handler runs where the message was read, here the caller waiting
    for its execute; a request made from it is read by that same thread."""
    answers: list[Any] = []
    with KernelManager("python3") as km, km.client() as kc:
        assert km.pid is not None
        assert_gone.append(km.pid)

        def on_open(comm: Any, message: Any) -> None:
            answers.append(kc.kernel_info(timeout=T))

        kc.comms.register_target("asks-back", on_open)
        result = kc.execute(KERNEL_OPENS, timeout=T)
        assert result.status == "ok", result.error
        # And the same from the transport's own thread, when nobody waits.
        kc.execute("kernel_comm.close()\nimport threading", timeout=T)
        kc.execute(
            "threading.Timer(0.2, lambda: globals().__setitem__('late', create_comm("
            "target_name='asks-back'))).start()",
            timeout=T,
        )
        deadline = time.monotonic() + T
        while len(answers) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    assert [type(a) for a in answers] == [KernelInfoReply, KernelInfoReply]


def test_closing_the_client_ends_a_waiting_request(own_kernel: KernelManager) -> None:
    kc = KernelClient(own_kernel.connection_info)  # type: ignore[arg-type]
    kc.start()
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(kc.execute, "import time\ntime.sleep(20)")
        time.sleep(0.3)
        started = time.monotonic()
        kc.close()
        with pytest.raises(TransportError, match="closed"):
            waiting.result(5)
        assert time.monotonic() - started < 5
    # A closed client can be started again and works.
    own_kernel.interrupt()
    with kc:
        assert kc.execute("print('again')", timeout=T).stdout == "again\n"
