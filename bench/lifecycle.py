"""Kernel lifecycle against jupyter_client, side by side in one run.

    python bench/lifecycle.py [--rounds 3] [--quick]

Rows for ipykernel (python3) and xeus-python: start-to-ready (until the kernel answered a
kernel_info_request), restart (to ready again), shutdown; and 10 concurrent ipykernel starts
against jupyter_client's AsyncMultiKernelManager. Rounds alternate the contenders; medians
and the ratio runtimelib / jupyter_client are printed with the targets.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Callable

import anyio
from jupyter_client.manager import KernelManager as JupyterKernelManager
from jupyter_client.multikernelmanager import AsyncMultiKernelManager as JupyterMulti

from _env import cache_bytecode
from runtimelib import AsyncMultiKernelManager, KernelManager

TARGETS = {"start-to-ready": 0.9, "restart": 0.5, "shutdown": 0.7, "10 concurrent starts": 0.8}


def _ours(name: str) -> dict[str, float]:
    km = KernelManager(name)
    t0 = time.perf_counter()
    km.start()
    t1 = time.perf_counter()
    km.restart()
    t2 = time.perf_counter()
    km.shutdown()
    t3 = time.perf_counter()
    return {"start-to-ready": t1 - t0, "restart": t2 - t1, "shutdown": t3 - t2}


def _theirs(name: str) -> dict[str, float]:
    km = JupyterKernelManager(kernel_name=name)
    t0 = time.perf_counter()
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        t1 = time.perf_counter()
        km.restart_kernel(now=False)
        kc.wait_for_ready(timeout=60)
        t2 = time.perf_counter()
    finally:
        kc.stop_channels()
    t3 = time.perf_counter()
    km.shutdown_kernel()
    t4 = time.perf_counter()
    return {"start-to-ready": t1 - t0, "restart": t2 - t1, "shutdown": t4 - t3}


def _ours_concurrent(count: int) -> float:
    async def run() -> float:
        async with AsyncMultiKernelManager() as pool:
            t0 = time.perf_counter()
            results = await pool.start_kernels(["python3"] * count)
            elapsed = time.perf_counter() - t0
            assert all(isinstance(r, str) for r in results), results
            return elapsed

    return anyio.run(run)


def _theirs_concurrent(count: int) -> float:
    async def run() -> float:
        mkm = JupyterMulti()
        t0 = time.perf_counter()
        ids = await asyncio.gather(*(mkm.start_kernel(kernel_name="python3") for _ in range(count)))
        clients = [mkm.get_kernel(kernel_id).client() for kernel_id in ids]
        for kc in clients:
            kc.start_channels()
        try:
            await asyncio.gather(*(kc._async_wait_for_ready(timeout=60) for kc in clients))
            return time.perf_counter() - t0
        finally:
            for kc in clients:
                kc.stop_channels()
            await mkm.shutdown_all()

    return asyncio.run(run())


def _median(fn: Callable[[], float], rounds: int) -> float:
    return statistics.median(fn() for _ in range(rounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one round, no concurrent row")
    args = parser.parse_args()
    rounds = 1 if args.quick else args.rounds
    with tempfile.TemporaryDirectory() as runtime:
        os.environ["JUPYTER_RUNTIME_DIR"] = runtime
        cache_bytecode(os.path.join(runtime, "pycache"))
        for name in ("python3", "xpython"):  # warm-up: fills the byte-code and kernelspec caches
            with KernelManager(name, output="devnull"):
                pass
        print(f"median of {rounds} rounds; ratio = runtimelib / jupyter_client")
        for name in ("python3", "xpython"):
            ours: dict[str, list[float]] = {}
            theirs: dict[str, list[float]] = {}
            for _ in range(rounds):
                for row, value in _ours(name).items():
                    ours.setdefault(row, []).append(value)
                for row, value in _theirs(name).items():
                    theirs.setdefault(row, []).append(value)
            for row in ours:
                a, b = statistics.median(ours[row]), statistics.median(theirs[row])
                print(
                    f"{name:8} {row:22} runtimelib {a:7.3f} s  jupyter_client {b:7.3f} s"
                    f"  ratio {a / b:.2f}x  (target <= {TARGETS[row]}x)"
                )
        if not args.quick:
            a_samples, b_samples = [], []
            for _ in range(rounds):
                a_samples.append(_ours_concurrent(10))
                b_samples.append(_theirs_concurrent(10))
            a, b = statistics.median(a_samples), statistics.median(b_samples)
            row = "10 concurrent starts"
            print(
                f"python3  {row:22} runtimelib {a:7.3f} s  jupyter_client {b:7.3f} s"
                f"  ratio {a / b:.2f}x  (target <= {TARGETS[row]}x)"
            )


if __name__ == "__main__":
    main()
