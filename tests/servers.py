"""Real Jupyter servers for the tests: a Jupyter Server, a Kernel Gateway or an Enterprise
Gateway, started on 127.0.0.1 with a random token, in directories of their own, stopped (with
their kernels) afterwards."""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import secrets
import shutil
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
    """Start a ``jupyter_server``, ``kernel_gateway`` or ``enterprise_gateway`` in ``where``
    and wait until its API answers; on leaving, stop it (SIGTERM: it shuts its kernels
    down)."""
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
    elif kind == "enterprise_gateway":
        command = [
            str(enterprise_gateway_venv() / "bin" / "jupyter"), "enterprisegateway",
            "--EnterpriseGatewayApp.ip=127.0.0.1", f"--EnterpriseGatewayApp.port={port}",
            "--EnterpriseGatewayApp.port_retries=0",
            # A listing of the running kernels is off by default; the tests check it.
            "--EnterpriseGatewayApp.list_kernels=True",
        ]  # fmt: skip
        environ["EG_AUTH_TOKEN"] = token
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


# -- Enterprise Gateway's own environment ---------------------------------------------------------

#: Jupyter Enterprise Gateway pins jupyter_client 6, jupyter_server 1, pyzmq 24 and anyio 3,
#: older than the test environment's: it runs from a virtual environment of its own, made once
#: per machine. These releases (wheels for CPython 3.11) install together. The clients of the
#: Kubernetes, Docker and YARN process proxies (each imported only by its proxy) and nbconvert
#: (jupyter_server's export handlers, which the gateway does not serve) are left out: they
#: made the install four times slower.
# The user's cache directory, where what the tests build once per machine is kept. conftest
# gives each pytest process (and so its kernels) a fresh XDG_CACHE_HOME and keeps the user's in
# RUNTIMELIB_TESTS_USER_CACHE, which xdist workers inherit from the process that started them.
USER_CACHE = Path(
    os.environ.get("RUNTIMELIB_TESTS_USER_CACHE")
    or os.environ.get("XDG_CACHE_HOME")
    or Path.home() / ".cache"
)

ENTERPRISE_GATEWAY = "3.3.0"
ENTERPRISE_GATEWAY_PACKAGES = (
    f"jupyter_enterprise_gateway=={ENTERPRISE_GATEWAY}", "jupyter-server==1.24.0",
    "jupyter-client==6.1.12", "jupyter_core==5.9.1", "pyzmq==24.0.1", "anyio==3.7.1",
    "tornado==6.6.1", "traitlets==5.16.1", "ipykernel==6.29.5", "ipython==9.19.1",
    "ipython_pygments_lexers==1.1.1", "comm==0.2.3", "debugpy==1.8.22", "jedi==0.20.1",
    "parso==0.8.7", "matplotlib-inline==0.2.2", "nest-asyncio==1.6.0", "prompt_toolkit==3.0.53",
    "wcwidth==0.9.5", "Pygments==2.21.0", "stack-data==0.6.3", "asttokens==3.0.2",
    "executing==2.3.0", "pure_eval==0.2.4", "pexpect==4.9.0", "ptyprocess==0.7.0",
    "psutil==7.2.2", "packaging==26.4", "platformdirs==4.14.9", "python-dateutil==4.0.0",
    "typing_extensions==4.16.0", "paramiko==5.1.0", "bcrypt==5.0.0", "cryptography==51.0.1",
    "cffi==2.1.1", "pycparser==3.12", "PyNaCl==1.6.2", "invoke==3.0.3", "pycryptodomex==3.24.2",
    "future==1.0.0", "Jinja2==3.1.6", "MarkupSafe==3.0.4", "requests==2.34.2",
    "urllib3==2.8.0", "idna==3.21", "certifi==2026.10.19.post1", "charset-normalizer==3.5.3",
    "watchdog==7.1.1", "nbformat==5.11.1", "fastjsonschema==2.22.3", "jsonschema==4.26.0",
    "jsonschema-specifications==2025.9.1", "referencing==0.37.0", "rpds-py==2026.9.1",
    "attrs==26.1.0", "argon2-cffi==25.1.0", "argon2-cffi-bindings==26.2.0",
    "prometheus_client==0.26.0", "Send2Trash==2.2.0", "terminado==0.18.1", "sniffio==1.3.1",
    "tzdata==2026.6", "websocket-client==1.9.2",
)  # fmt: skip


def enterprise_gateway_venv() -> Path:
    """The Enterprise Gateway's virtual environment, made on first use under the user's cache
    directory and kept for later runs.

    xdist workers ask at the same time: the first makes it under a file lock, the others wait
    for it. A marker written last (the package list) tells a complete environment from one a
    killed run left half made, or one made with other pins; such a one is made again. When pip
    cannot install the packages, this fails with pip's output: a test that needs the gateway
    must not pass unnoticed for want of one.
    """
    venv = USER_CACHE / "runtimelib-tests" / f"enterprise-gateway-{ENTERPRISE_GATEWAY}"
    marker = venv / "runtimelib-complete"
    wanted = "\n".join(ENTERPRISE_GATEWAY_PACKAGES) + "\n"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f"{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists() and marker.read_text() == wanted:
            return venv
        shutil.rmtree(venv, ignore_errors=True)
        _make_venv(venv)
        marker.write_text(wanted)
    return venv


def _make_venv(venv: Path) -> None:
    python = venv / "bin" / "python"
    # This interpreter's pip installs into the new environment when it can (pip >= 22.3 takes
    # --python); the environment then needs no pip of its own, which saves seconds.
    outer_pip = importlib.util.find_spec("pip") is not None
    create = [sys.executable, "-m", "venv", *(["--without-pip"] if outer_pip else []), str(venv)]
    pip = (
        [sys.executable, "-m", "pip", "--python", str(python)]
        if outer_pip
        else [str(python), "-m", "pip"]
    )
    # --no-deps: the list is complete. Wheels only, and no byte-compiling of modules the
    # gateway never imports.
    install = [
        *pip, "install", "--no-deps", "--only-binary=:all:", "--no-compile",
        "--disable-pip-version-check", "--no-input", *ENTERPRISE_GATEWAY_PACKAGES,
    ]  # fmt: skip
    for step in (create, install):
        done = subprocess.run(step, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if done.returncode != 0:
            shutil.rmtree(venv, ignore_errors=True)
            raise AssertionError(
                f"could not make Enterprise Gateway's environment in {venv}: {step[:6]} ... "
                f"exited with {done.returncode}\n{done.stdout}\n{done.stderr}"
            )
