"""What the remote kernel tests share: the code they run, the answers they give, the bounds
they wait for."""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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


class SlowLaunchServer:
    """A server whose kernel launch takes ``delay`` seconds, as a gateway starting kernels on
    a cluster does. It starts no process: it records the ids of the kernels it answered for
    (``started``) and of those it was asked to shut down (``deleted``); ``launching`` is set
    when a launch request arrives."""

    def __init__(self, delay: float) -> None:
        started: list[str] = []
        deleted: list[str] = []
        launching = threading.Event()
        self.started, self.deleted, self.launching = started, deleted, launching

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                launching.set()
                time.sleep(delay)
                kernel_id = str(uuid.uuid4())
                started.append(kernel_id)
                body = json.dumps({"id": kernel_id, "name": "python3"}).encode()
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_DELETE(self) -> None:
                deleted.append(self.path.rstrip("/").rsplit("/", 1)[-1])
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.block_on_close = False  # a launch still sleeping is not waited for
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
