"""Start-to-ready with the startup handshake against ports picked by the manager, one run.

    python bench/startup.py [--rounds 5] [--quick]

For our two kernels: the median time from ``start()`` to ready (kernel_info answered and
iopub heard) over 10 starts, and the wall time of 20 starts at once (AsyncKernelManager),
each with ``startup_handshake`` True (the kernel binds its own ports and registers) and False
(ports picked here, written to the connection file). Rounds alternate the two; printed: the
median of the rounds, and handshake / picked ports.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import anyio

from _env import cache_bytecode
from runtimelib import AsyncKernelManager, KernelManager

MODES = {"picked ports": False, "handshake": True}


def _sequential(kernel: str, handshake: bool, count: int) -> float:
    samples = []
    for _ in range(count):
        km = KernelManager(kernel, startup_handshake=handshake, output="devnull")
        t0 = time.perf_counter()
        km.start()
        samples.append(time.perf_counter() - t0)
        km.shutdown(now=True)
    return statistics.median(samples) * 1000


def _concurrent(kernel: str, handshake: bool, count: int) -> float:
    managers = [
        AsyncKernelManager(kernel, startup_handshake=handshake, output="devnull")
        for _ in range(count)
    ]

    async def main() -> float:
        t0 = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for km in managers:
                tg.start_soon(km.start)
        elapsed = time.perf_counter() - t0
        async with anyio.create_task_group() as tg:
            for km in managers:
                tg.start_soon(lambda km=km: km.shutdown(now=True))
        return elapsed

    return anyio.run(main)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="one short round")
    args = parser.parse_args()
    rounds, starts, crowd = (1, 3, 5) if args.quick else (args.rounds, 10, 20)
    with tempfile.TemporaryDirectory() as runtime:
        os.environ["JUPYTER_RUNTIME_DIR"] = runtime
        cache_bytecode(os.path.join(runtime, "pycache"))
        _sequential("runtimelib-echo", True, 1)  # warm the byte-code cache
        print(f"median of {rounds} rounds; ratio = handshake / picked ports")
        for kernel in ("runtimelib-echo", "runtimelib-python"):
            rows: dict[str, dict[str, list[float]]] = {}
            for _ in range(rounds):
                for mode, handshake in MODES.items():
                    rows.setdefault(f"start-to-ready ms (median of {starts})", {}).setdefault(
                        mode, []
                    ).append(_sequential(kernel, handshake, starts))
                    rows.setdefault(f"{crowd} starts at once s", {}).setdefault(mode, []).append(
                        _concurrent(kernel, handshake, crowd)
                    )
            for row, by_mode in rows.items():
                picked = statistics.median(by_mode["picked ports"])
                handshake = statistics.median(by_mode["handshake"])
                print(
                    f"  {kernel:17} {row:32} picked {picked:8.2f}  handshake {handshake:8.2f}"
                    f"  {handshake / picked:5.2f}x"
                )


if __name__ == "__main__":
    main()
