"""What the remote kernel tests share: the code they run, the answers they give, the bounds
they wait for."""

from __future__ import annotations

from runtimelib.client import Output
from runtimelib.messages import Stream

#: The websocket formats: the v1 subprotocol and the legacy JSON one.
FORMATS = ("v1", "legacy")
#: Bound on one request: generous for a loaded 2-core machine, well under pytest-timeout.
T = 30.0
#: Less than the sleep: a kernel that was not interrupted fails the execute with a timeout.
SHORT = 20.0

SLEEP = "print('sleeping', flush=True)\nimport time\ntime.sleep(30)"
#: How long after SLEEP says it sleeps an interrupt is sent: an interrupt that lands while
#: the kernel is still flushing the print can be lost in the kernel.
SETTLE = 0.3
FRESH = "print('marker' in globals())"
INPUT_CODE = (
    "name = input('name: ')\n"
    "import getpass\n"
    "secret = getpass.getpass('password: ')\n"
    "print(name, len(secret), secret == 's3cret')"
)
ANSWERS = {False: "Ada", True: "s3cret"}

ALL_BYTES = bytes(range(256))
FROM_CLIENT = [ALL_BYTES, b"", b"\x00\xff" * 1000]
REPLY_BUFFERS = [b"\xff" * 3, ALL_BYTES[::-1]]


def legacy(fmt: str) -> bool:
    return fmt == "legacy"


def started_sleeping(output: Output) -> bool:
    return isinstance(output, Stream) and "sleeping" in output.text
