"""The orphan guard: a tiny process that ends our kernels when the process that launched them dies.

It reads ``+<pgid> <connection file>`` and ``-<pgid>`` lines on stdin, the write end of which
only the launching process holds. When stdin reaches end of file, that process is gone (however
it died, SIGKILL included): every kernel process group still registered gets SIGTERM, then
SIGKILL, and its connection file, which holds the kernel's key, is removed.

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
    """SIGTERM each group, give them a moment, SIGKILL the rest."""
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
    files: dict[int, str] = {}
    for line in sys.stdin.buffer:
        sign, _, rest = line.rstrip(b"\n").partition(b" ")
        if len(sign) < 2 or not sign[1:].isdigit():
            continue
        pgid = int(sign[1:])
        if sign[:1] == b"+":
            files[pgid] = os.fsdecode(rest)
        elif sign[:1] == b"-":
            files.pop(pgid, None)
    _end(set(files))
    for path in files.values():
        if path:
            with contextlib.suppress(OSError):
                os.unlink(path)


if __name__ == "__main__":
    main()
