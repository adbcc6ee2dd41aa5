"""Import time of runtimelib against jupyter_client, side by side in one run.

    python bench/import_time.py [--runs 15]

Each run starts a fresh interpreter per statement, interleaved; the time of a bare
``python -c pass`` is subtracted so only the import itself is compared.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

PAIRS = {
    "package": ("import runtimelib", "import jupyter_client"),
    "codec ready": (
        "from runtimelib.protocol import Session",
        "from jupyter_client.session import Session",
    ),
}


def _time(statement: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    statements = ["pass"] + [s for pair in PAIRS.values() for s in pair]
    samples: dict[str, list[float]] = {s: [] for s in statements}
    for statement in statements:  # warm the file cache and byte-code caches
        _time(statement)
    for _ in range(args.runs):
        for statement in statements:
            samples[statement].append(_time(statement))
    base = statistics.median(samples["pass"])
    print(f"interpreter start-up (subtracted): {base * 1000:.1f} ms, median of {args.runs}")
    for name, (ours, theirs) in PAIRS.items():
        our_ms = (statistics.median(samples[ours]) - base) * 1000
        their_ms = (statistics.median(samples[theirs]) - base) * 1000
        print(
            f"{name:<12} runtimelib {our_ms:7.1f} ms   jupyter_client {their_ms:7.1f} ms"
            f"   ratio {our_ms / their_ms:.2f}x"
        )


if __name__ == "__main__":
    main()
