"""The orphan guard: a tiny process that ends our kernels when the process that launched them dies.

It reads ``+<pgid>`` and ``-<pgid>`` lines on stdin, the write end of which only the launching
process holds. When stdin reaches end of file, that process is gone (however it died, SIGKILL
included): every kernel process group still registered gets SIGTERM, then SIGKILL.

Run as ``python -I -S -m runtimelib.manager._guard``; it imports only the standard library.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time

GRACE_SECONDS = 2.0


def _alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _end(groups: set[int]) -> None:
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_SECONDS
    while groups and time.monotonic() < deadline:
        groups = {pgid for pgid in groups if _alive(pgid)}
        time.sleep(0.05)
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


def main() -> None:
    """Track kernel process groups until stdin closes, then end the ones still registered."""
    # Terminal signals are meant for the user's program, not for its guard.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    groups: set[int] = set()
    for line in sys.stdin.buffer:
        sign, digits = line[:1], line[1:].strip()
        if not digits.isdigit():
            continue
        pgid = int(digits)
        if sign == b"+":
            groups.add(pgid)
        elif sign == b"-":
            groups.discard(pgid)
    _end(groups)


if __name__ == "__main__":
    main()
