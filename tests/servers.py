"""Real Jupyter servers for the tests: a Jupyter Server or a Kernel Gateway, started on
127.0.0.1 with a random token, in directories of their own, stopped (with their kernels)
afterwards."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple


class Server(NamedTuple):
    """A server a test started."""

    url: str
    token: str
    pid: int
    kind: str
    log: Path
    runtime: Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def running_server(
    kind: str, where: Path, args: Sequence[str] = (), env: dict[str, str] | None = None
) -> Iterator[Server]:
    """Start a ``jupyter_server`` or ``kernel_gateway`` in ``where`` and wait until its API
    answers; on leaving, stop it (SIGTERM: it shuts its kernels down)."""
    token = secrets.token_hex(16)
    port = free_port()
    root = where / "root"
    runtime = where / "runtime"
    root.mkdir(parents=True, exist_ok=True)
    environ = dict(os.environ if env is None else env)
    environ.setdefault("JUPYTER_RUNTIME_DIR", str(runtime))
    environ.setdefault("JUPYTER_CONFIG_DIR", str(where / "config"))
    environ.setdefault("IPYTHONDIR", str(where / "ipython"))
    if kind == "jupyter_server":
        command = [
            sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root",
            "--ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        ]  # fmt: skip
    elif kind == "kernel_gateway":
        command = [
            sys.executable, "-m", "kernel_gateway", "--KernelGatewayApp.ip=127.0.0.1",
            f"--KernelGatewayApp.port={port}", "--KernelGatewayApp.port_retries=0",
        ]  # fmt: skip
        environ["KG_AUTH_TOKEN"] = token
    else:
        raise ValueError(kind)
    log_path = where / f"{kind}.log"
    log = log_path.open("wb")
    server = subprocess.Popen(
        [*command, *args], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        env=environ, cwd=root,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            request = urllib.request.Request(
                f"{url}/api/kernelspecs", headers={"Authorization": f"token {token}"}
            )
            try:
                with urllib.request.urlopen(request, timeout=5):
                    break
            except (urllib.error.URLError, ConnectionError):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        f"{kind} did not start:\n" + log_path.read_text(errors="replace")
                    ) from None
                time.sleep(0.1)
        yield Server(url, token, server.pid, kind, log_path, Path(environ["JUPYTER_RUNTIME_DIR"]))
    finally:
        stop(server)
        log.close()


def stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
