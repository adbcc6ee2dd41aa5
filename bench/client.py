"""Kernel clients against jupyter_client on the same kernels, side by side in one run.

    python bench/client.py [--rounds 3] [--quick]

Rows, for ipykernel (python3) and xeus-python: kernel_info round trip and execute('pass')
to idle (medians, in ms), and 20,000 prints (lines received and seconds). Contenders: the
async and blocking runtimelib clients, jupyter_client's BlockingKernelClient, and raw pyzmq
sockets driven by hand in one thread, which leave iopub unread during a kernel_info (the
floor: the kernel's own time plus the least a client can add). All talk to the same kernel,
one after the other. Each time is given as a ratio to jupyter_client and to the floor.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import anyio
import zmq
from jupyter_client.blocking.client import BlockingKernelClient

from _env import median_ms
from runtimelib import AsyncKernelClient, ConnectionInfo, KernelClient, KernelManager
from runtimelib.messages import ExecuteRequest, KernelInfoRequest, Message, Status, Stream
from runtimelib.protocol import Session

FLOOD = "for i in range(20000): print(i)"


def _ours_async(info: ConnectionInfo, count: int) -> dict[str, float]:
    async def run() -> dict[str, float]:
        async with AsyncKernelClient(info) as kc:

            async def timed(make: Callable[[], Any]) -> float:
                samples = []
                for _ in range(count):
                    t0 = time.perf_counter()
                    await make()
                    samples.append((time.perf_counter() - t0) * 1000)
                return statistics.median(samples)

            info_ms = await timed(kc.kernel_info)
            pass_ms = await timed(lambda: kc.execute("pass"))
            t0 = time.perf_counter()
            flood = await kc.execute(FLOOD, timeout=120)
            return {
                "kernel_info ms": info_ms,
                "execute ms": pass_ms,
                "flood s": time.perf_counter() - t0,
                "flood lines": flood.stdout.count("\n"),
            }

    return anyio.run(run)


def _ours_blocking(info: ConnectionInfo, count: int) -> dict[str, float]:
    with KernelClient(info) as kc:
        info_ms = median_ms(kc.kernel_info, count)
        pass_ms = median_ms(lambda: kc.execute("pass"), count)
        t0 = time.perf_counter()
        flood = kc.execute(FLOOD, timeout=120)
        return {
            "kernel_info ms": info_ms,
            "execute ms": pass_ms,
            "flood s": time.perf_counter() - t0,
            "flood lines": flood.stdout.count("\n"),
        }


def _theirs(info: ConnectionInfo, count: int) -> dict[str, float]:
    kc = BlockingKernelClient()
    kc.load_connection_info(info.to_dict())  # type: ignore[arg-type]
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        info_ms = median_ms(lambda: kc.kernel_info(reply=True, timeout=30), count)
        pass_ms = median_ms(lambda: kc.execute_interactive("pass", timeout=30), count)
        text: list[str] = []

        def hook(msg: dict[str, Any]) -> None:
            if msg["msg_type"] == "stream":
                text.append(msg["content"]["text"])

        t0 = time.perf_counter()
        # If it loses the idle status or falls too far behind, count what arrived.
        with contextlib.suppress(TimeoutError):
            kc.execute_interactive(FLOOD, output_hook=hook, timeout=30)
        return {
            "kernel_info ms": info_ms,
            "execute ms": pass_ms,
            "flood s": time.perf_counter() - t0,
            "flood lines": "".join(text).count("\n"),
        }
    finally:
        kc.stop_channels()


def _raw(info: ConnectionInfo, count: int) -> dict[str, float]:
    session = Session(info.key_bytes, info.signature_scheme)
    ctx: zmq.Context[Any] = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.rcvhwm = 0
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(info.iopub_url)
    shell = ctx.socket(zmq.DEALER)
    shell.identity = session.session_id.encode()
    shell.connect(info.shell_url)
    idle = Status(execution_state="idle")

    def until_idle(request: Message[Any], on_message: Callable[[Message[Any]], None]) -> None:
        while True:
            message = session.deserialize(sub.recv_multipart())
            if message.parent_id != request.msg_id:
                continue
            on_message(message)
            if message.content == idle:
                return

    def kernel_info() -> None:
        shell.send_multipart(session.serialize(session.message(KernelInfoRequest())))
        session.deserialize(shell.recv_multipart())

    def execute() -> None:
        request = session.message(ExecuteRequest(code="pass"))
        shell.send_multipart(session.serialize(request))
        session.deserialize(shell.recv_multipart())
        until_idle(request, lambda message: None)

    try:
        time.sleep(0.5)  # let the subscription reach the kernel
        while sub.poll(50):
            sub.recv_multipart()
        info_ms = median_ms(kernel_info, count)
        # kernel_info's own busy and idle statuses are still on their way: drop them.
        while sub.poll(50):
            sub.recv_multipart()
        pass_ms = median_ms(execute, count)
        request = session.message(ExecuteRequest(code=FLOOD))
        lines = 0

        def on_message(message: Message[Any]) -> None:
            nonlocal lines
            if isinstance(message.content, Stream):
                lines += message.content.text.count("\n")

        t0 = time.perf_counter()
        shell.send_multipart(session.serialize(request))
        until_idle(request, on_message)
        return {
            "kernel_info ms": info_ms,
            "execute ms": pass_ms,
            "flood s": time.perf_counter() - t0,
            "flood lines": lines,
        }
    finally:
        sub.close(0)
        shell.close(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one short round")
    args = parser.parse_args()
    rounds, count = (1, 20) if args.quick else (args.rounds, 200)
    contenders = {
        "runtimelib async": _ours_async,
        "runtimelib blocking": _ours_blocking,
        "jupyter_client": _theirs,
        "raw pyzmq": _raw,
    }
    with tempfile.TemporaryDirectory() as runtime:
        os.environ["JUPYTER_RUNTIME_DIR"] = runtime
        for name in ("python3", "xpython"):
            samples: dict[str, dict[str, list[float]]] = {}
            with KernelManager(name) as km:
                assert km.connection_info is not None
                for _ in range(rounds):
                    for who, fn in contenders.items():
                        for row, value in fn(km.connection_info, count).items():
                            samples.setdefault(who, {}).setdefault(row, []).append(value)
            print(f"\n{name} (median of {rounds} rounds; x jupyter_client, and x raw pyzmq)")
            theirs = {r: statistics.median(v) for r, v in samples["jupyter_client"].items()}
            floor = {r: statistics.median(v) for r, v in samples["raw pyzmq"].items()}
            for who, rows in samples.items():
                cells = []
                for row, values in rows.items():
                    value = statistics.median(values)
                    if row == "flood lines":
                        cells.append(f"{row} {value:.0f} (min {min(values):.0f})")
                        continue
                    cells.append(
                        f"{row} {value:.3f} ({value / theirs[row]:.2f}x, {value / floor[row]:.2f}x)"
                    )
                print(f"  {who:20} " + ", ".join(cells))


if __name__ == "__main__":
    main()
