"""runtimelib's Python kernel against ipykernel and xeus-python, driven by the same client.

    python bench/kernels.py [--rounds 5] [--quick]

Rows: start-to-ready (launch until the kernel answered), execute('pass') round trip,
20,000 prints delivered (count and time), and the resident memory of an idle kernel.
Each round visits the kernels in turn, so machine noise hits them alike; medians are
reported with the ratio runtimelib-python / ipykernel.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from _env import cache_bytecode
from runtimelib import KernelManager

KERNELS = ("runtimelib-python", "python3", "xpython")
FLOOD = "for i in range(20000): print(i)"


def _rss_kib(pid: int) -> int:
    """Resident memory of a process and its children's, from /proc (Linux)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _measure(name: str, executes: int) -> dict[str, float]:
    started = time.perf_counter()
    km = KernelManager(name)
    km.start()
    try:
        ready = time.perf_counter() - started
        with km.client() as kc:
            kc.execute("pass")  # warm up
            t0 = time.perf_counter()
            for _ in range(executes):
                kc.execute("pass")
            per_execute = (time.perf_counter() - t0) / executes
            t0 = time.perf_counter()
            flood = kc.execute(FLOOD, timeout=120)
            flood_time = time.perf_counter() - t0
            lines = flood.stdout.count("\n")
            time.sleep(0.5)  # let the kernel settle before reading its memory
            assert km.pid is not None
            rss = _rss_kib(km.pid)
    finally:
        km.shutdown()
    return {
        "start-to-ready s": ready,
        "execute('pass') ms": per_execute * 1000,
        "20k prints s": flood_time,
        "20k prints lines": lines,
        "idle RSS MiB": rss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="one short round")
    args = parser.parse_args()
    rounds, executes = (1, 20) if args.quick else (args.rounds, 200)
    with tempfile.TemporaryDirectory() as runtime:
        os.environ["JUPYTER_RUNTIME_DIR"] = runtime
        cache_bytecode(os.path.join(runtime, "pycache"))
        for name in KERNELS:  # warm-up: fills the byte-code and kernelspec caches
            with KernelManager(name, output="devnull"):
                pass
        samples: dict[str, dict[str, list[float]]] = {k: {} for k in KERNELS}
        for _ in range(rounds):
            for name in KERNELS:
                for row, value in _measure(name, executes).items():
                    samples[name].setdefault(row, []).append(value)
    rows = list(samples[KERNELS[0]])
    print(f"median of {rounds} rounds; ratio = runtimelib-python / ipykernel (python3)")
    print(f"{'':22}" + "".join(f"{k:>20}" for k in KERNELS) + f"{'ratio':>10}")
    for row in rows:
        values = [statistics.median(samples[k][row]) for k in KERNELS]
        ratio = values[0] / values[1] if values[1] else float("nan")
        cells = "".join(f"{v:>20.3f}" for v in values)
        print(f"{row:22}{cells}{ratio:>9.2f}x")


if __name__ == "__main__":
    main()
