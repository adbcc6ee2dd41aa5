"""This checkout against an earlier commit of runtimelib, side by side in one run.

    python bench/versions.py BASE [--rounds 5]

BASE is a git revision (the code before a change). Its source is checked out into a
temporary worktree; rounds alternate between the two trees, each round a fresh process that
imports runtimelib from its tree and measures, on the same ipykernel (python3) and
xeus-python kernels: start-to-ready, restart and shutdown (blocking manager); kernel_info and
execute('pass') round trips with the blocking and the async client (medians of 200, in ms);
20,000 printed lines to idle (s); and the codec (serialize + deserialize of an execute_request,
in µs). Printed: each side's median over the rounds and the ratio this / BASE.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _env import median_ms

HERE = Path(__file__).resolve().parent
FLOOD = "for i in range(20000): print(i)"


def _measure(kernel: str) -> dict[str, float]:
    """One round in this process: the runtimelib on sys.path, timed on ``kernel``."""
    import inspect

    import anyio

    from runtimelib import AsyncKernelClient, KernelManager

    rows: dict[str, float] = {}
    # Like with like: a version that encrypts by default is measured plain, as older ones run.
    options: dict[str, Any] = {"output": "devnull"}
    if "transport_encryption" in inspect.signature(KernelManager).parameters:
        options["transport_encryption"] = "disabled"
    t0 = time.perf_counter()
    km = KernelManager(kernel, **options)
    km.start()
    rows["start-to-ready s"] = time.perf_counter() - t0
    try:
        assert km.connection_info is not None
        with km.client() as kc:
            rows["blocking kernel_info ms"] = median_ms(kc.kernel_info, 200)
            rows["blocking execute ms"] = median_ms(lambda: kc.execute("pass"), 200)
            t0 = time.perf_counter()
            lines = kc.execute(FLOOD, timeout=120).stdout.count("\n")
            rows["flood s"] = time.perf_counter() - t0
            # A real kernel's iopub drops above its high-water mark when starved of CPU,
            # whoever reads (bench/client.py): the count is shown, not required.
            rows["flood lines"] = lines

        async def async_rows() -> None:
            assert km.connection_info is not None
            async with AsyncKernelClient(km.connection_info) as client:
                for name, fn in (("kernel_info", client.kernel_info), ("execute", None)):
                    samples = []
                    for _ in range(200):
                        t0 = time.perf_counter()
                        await (fn() if fn is not None else client.execute("pass"))
                        samples.append((time.perf_counter() - t0) * 1000)
                    rows[f"async {name} ms"] = statistics.median(samples)

        anyio.run(async_rows)
        t0 = time.perf_counter()
        km.restart()
        rows["restart s"] = time.perf_counter() - t0
    finally:
        t0 = time.perf_counter()
        km.shutdown()
        rows["shutdown s"] = time.perf_counter() - t0
    return rows


def _codec() -> dict[str, float]:
    from runtimelib.messages import ExecuteRequest
    from runtimelib.protocol import Session

    session = Session(b"a-key")
    content = ExecuteRequest(code="print('hello world')\n" * 4)
    count = 20000
    t0 = time.perf_counter()
    for _ in range(count):
        # A new message each time: the receiving side refuses a signature it has seen.
        session.deserialize(session.serialize(session.message(content)))
    return {"codec round trip us": (time.perf_counter() - t0) / count * 1e6}


def _worker() -> None:
    import runtimelib

    results = {name: _measure(name) for name in ("python3", "xpython")}
    results["codec"] = _codec()
    print(json.dumps({"from": runtimelib.__file__, "results": results}))


def _round(tree: Path, runtime: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "JUPYTER_RUNTIME_DIR": runtime}
    done = subprocess.run(
        [sys.executable, __file__, "--worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise SystemExit(f"a round of {tree} failed:\n{done.stderr[-3000:]}")
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    where = Path(report["from"]).resolve()
    assert where.is_relative_to(tree.resolve()), f"{where} is not from {tree}"
    return report["results"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", nargs="?", help="the git revision to compare with")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker()
        return
    if not args.base:
        parser.error("name the revision to compare with")
    repo = HERE.parent
    head = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    with tempfile.TemporaryDirectory() as scratch:
        base_tree = Path(scratch) / "base"
        add = ["worktree", "add", "--detach", "-q", str(base_tree), args.base]
        subprocess.run(["git", "-C", str(repo), *add], check=True)
        runtime = os.path.join(scratch, "runtime")
        os.makedirs(runtime)
        samples: dict[str, dict[str, dict[str, list[float]]]] = {"base": {}, "this": {}}
        try:
            for _ in range(args.rounds):
                for side, tree in (("base", base_tree), ("this", repo)):
                    for kernel, rows in _round(tree, runtime).items():
                        for row, value in rows.items():
                            table = samples[side].setdefault(kernel, {})
                            table.setdefault(row, []).append(value)
        finally:
            subprocess.run(
                ["git", "-C", str(repo), "worktree", "remove", "--force", str(base_tree)],
                check=False,
            )
    print(f"this checkout ({head}, uncommitted changes included) against {args.base}")
    print(f"median of {args.rounds} rounds, alternating; ratio = this / base")
    for kernel, rows in samples["this"].items():
        for row, values in rows.items():
            ours = statistics.median(values)
            base = statistics.median(samples["base"][kernel][row])
            print(f"  {kernel:8} {row:24} base {base:9.3f}  this {ours:9.3f}  {ours / base:5.2f}x")


if __name__ == "__main__":
    main()
