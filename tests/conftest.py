"""Shared fixtures: isolated Jupyter directories, test kernelspecs, leak checks."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .servers import USER_CACHE, Server, enterprise_gateway_venv, running_server

# Kernelspecs of small misbehaving kernels, for the error paths of the lifecycle.
PY = sys.executable
IGNORE_TERM = (
    "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
    "from ipykernel.kernelapp import launch_new_instance; launch_new_instance()"
)
TEST_SPECS: dict[str, dict[str, object]] = {
    "ignores-sigterm": {
        "argv": [PY, "-c", IGNORE_TERM, "-f", "{connection_file}"],
        "display_name": "ipykernel ignoring SIGTERM",
        "language": "python",
    },
    "exits-at-once": {
        "argv": [PY, "-c", "import sys; print('boom: no luck', file=sys.stderr); sys.exit(3)"],
        "display_name": "exits with an error",
        "language": "python",
    },
    "never-ready": {
        "argv": [PY, "-c", "import time; time.sleep(120)", "{connection_file}"],
        "display_name": "never answers",
        "language": "python",
    },
    "missing-binary": {
        "argv": ["/nonexistent/bin/kernel", "{connection_file}"],
        "display_name": "no such program",
        "language": "none",
    },
    "python3-message-interrupt": {
        "argv": [PY, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "ipykernel interrupted by message",
        "language": "python",
        "interrupt_mode": "message",
    },
    "bash": {
        "argv": [PY, "-m", "bash_kernel", "-f", "{connection_file}"],
        "display_name": "Bash",
        "language": "bash",
    },
    # A metakernel kernel: its replies have shapes the others' do not.
    "calysto_scheme": {
        "argv": [PY, "-m", "calysto_scheme", "-f", "{connection_file}"],
        "display_name": "Calysto Scheme",
        "language": "scheme",
    },
}


def pytest_configure(config: pytest.Config) -> None:
    """The run gives its kernels a cache directory of its own, made before any kernel starts.

    jedi and parso (completion in ipykernel and xeus-python) keep parsed modules as pickles in
    the user's cache, written in place: a kernel reading one that another kernel is still
    writing gets a truncated pickle, and its completion comes back empty. So the process that
    starts the run (xdist's workers inherit the directory) fills a fresh cache with what the
    kernels' completions parse, through IPython's own completer, before any test runs: the
    kernels then only read it.
    """
    if "RUNTIMELIB_TESTS_USER_CACHE" in os.environ:
        return  # an xdist worker: the directory is its parent's
    os.environ["RUNTIMELIB_TESTS_USER_CACHE"] = str(USER_CACHE)
    # pip, which some tests run (a bare machine's install, the gateway's environment), keeps
    # the user's cache of wheels.
    os.environ.setdefault("PIP_CACHE_DIR", str(USER_CACHE / "pip"))
    cache = tempfile.mkdtemp(prefix="runtimelib-tests-cache-")
    config.stash[_CACHE] = cache
    os.environ["XDG_CACHE_HOME"] = cache
    subprocess.run(
        [sys.executable, "-c", _FILL_COMPLETION_CACHE],
        env={**os.environ, "IPYTHONDIR": os.path.join(cache, "ipython")},
        capture_output=True,
        timeout=120,
        check=True,
    )


_FILL_COMPLETION_CACHE = """
from IPython.core.completer import provisionalcompleter
from IPython.core.interactiveshell import InteractiveShell
import jedi

shell = InteractiveShell.instance()
with provisionalcompleter():
    for text in ("pri", "print", "import o", "os.pa"):
        list(shell.Completer.completions(text, len(text)))
jedi.Interpreter("pri", [{}]).complete()
"""


def pytest_unconfigure(config: pytest.Config) -> None:
    cache = config.stash.get(_CACHE, None)
    if cache is not None:
        shutil.rmtree(cache, ignore_errors=True)


_CACHE = pytest.StashKey[str]()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); it has exited all the same.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return True


@pytest.fixture
def jupyter_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Private Jupyter data, config and runtime dirs, with the test kernelspecs installed.

    Kernels installed in the environment (ipykernel's python3, xeus-python's xpython) stay
    visible. After the test, the runtime dir must hold no connection file.
    """
    data = tmp_path / "data"
    kernels = tmp_path / "path" / "kernels"
    for name, spec in TEST_SPECS.items():
        (kernels / name).mkdir(parents=True)
        (kernels / name / "kernel.json").write_text(json.dumps(spec))
    runtime = tmp_path / "runtime"
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "path"))
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(data))
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime))
    # ipykernel's history database would otherwise be shared by every kernel of the run.
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    yield runtime
    leftovers = sorted(runtime.glob("kernel-*.json")) if runtime.exists() else []
    for path in leftovers:
        _end_left_kernel(path)
    assert [p.name for p in leftovers] == [], "connection files left behind"


def _end_left_kernel(path: Path) -> None:
    """End the kernel a failed test left running (``runtimelib start`` kernels outlive the
    command), so that one failure does not leave processes behind; the test still fails."""
    from runtimelib import ConnectionInfo
    from runtimelib.manager.record import ProcessRecord

    try:
        record = ProcessRecord.read(ConnectionInfo.from_file(path))
    except Exception:
        return
    if record is not None and record.is_running():
        record.signal_group(signal.SIGKILL)


@pytest.fixture
def assert_gone() -> Iterator[list[int]]:
    """Collects kernel pids; after the test every one of them must have exited."""
    pids: list[int] = []
    yield pids
    alive = [pid for pid in pids if _pid_alive(pid)]
    assert alive == [], f"kernel processes left running: {alive}"


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Every async test runs on asyncio and on trio."""
    return str(request.param)


@pytest.fixture
def jupyter_server(jupyter_env: Path, tmp_path: Path) -> Iterator[Server]:
    """A real Jupyter Server on 127.0.0.1 with a random token, writing its kernels'
    connection files in the test's runtime dir."""
    with running_server("jupyter_server", tmp_path, env=dict(os.environ)) as server:
        yield server


@pytest.fixture(scope="session")
def remote_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One Jupyter Server (default settings, rate limit on) shared by the remote tests of a
    worker; its kernels see the environment's kernelspecs and the test kernelspecs."""
    where = tmp_path_factory.mktemp("remote-server")
    with running_server("jupyter_server", where, env=_server_env(where)) as server:
        yield server


@pytest.fixture(scope="session")
def kernel_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One Kernel Gateway shared by the remote tests of a worker."""
    where = tmp_path_factory.mktemp("kernel-gateway")
    with running_server("kernel_gateway", where, env=_server_env(where)) as server:
        yield server


@pytest.fixture(scope="session")
def enterprise_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One Jupyter Enterprise Gateway (run from a virtual environment of its own) shared by
    the tests of a worker. Its kernelspecs run its environment's ipykernel: ``python3`` on the
    local process proxy, ``python3-distributed`` on the distributed one (on 127.0.0.1, which it
    reaches without SSH)."""
    where = tmp_path_factory.mktemp("enterprise-gateway")
    env = _enterprise_gateway_env(where, enterprise_gateway_venv())
    hosts = ["--EnterpriseGatewayApp.remote_hosts=127.0.0.1"]
    with running_server("enterprise_gateway", where, args=hosts, env=env) as server:
        yield server


def _enterprise_gateway_env(where: Path, venv: Path) -> dict[str, str]:
    python = str(venv / "bin" / "python")
    processproxies = "enterprise_gateway.services.processproxies"
    launcher = str(Path(__file__).with_name("gateway_launcher.py"))
    (where / "launched").mkdir()
    (where / "kernel-logs").mkdir()
    specs: dict[str, dict[str, object]] = {
        "python3": {
            "argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (local process proxy)",
            "language": "python",
            # What the gateway uses for a kernelspec that names no process proxy; named here
            # so that the test does not rest on that default.
            "metadata": {
                "process_proxy": {"class_name": f"{processproxies}.processproxy.LocalProcessProxy"}
            },
        },
        "python3-distributed": {
            "argv": [python, launcher, "{kernel_id}", "{response_address}", "{public_key}"],
            "display_name": "Python 3 (distributed process proxy)",
            "language": "python",
            "env": {"RUNTIMELIB_LAUNCHER_DIR": str(where / "launched")},
            "metadata": {
                "process_proxy": {
                    "class_name": f"{processproxies}.distributed.DistributedProcessProxy"
                }
            },
        },
    }
    for name, spec in specs.items():
        (where / "path" / "kernels" / name).mkdir(parents=True)
        (where / "path" / "kernels" / name / "kernel.json").write_text(json.dumps(spec))
    env = dict(os.environ)
    env["JUPYTER_PATH"] = str(where / "path")
    env["JUPYTER_DATA_DIR"] = str(where / "data")
    env["EG_KERNEL_LOG_DIR"] = str(where / "kernel-logs")
    return env


def _server_env(where: Path) -> dict[str, str]:
    kernels = where / "path" / "kernels"
    for name, spec in TEST_SPECS.items():
        (kernels / name).mkdir(parents=True, exist_ok=True)
        (kernels / name / "kernel.json").write_text(json.dumps(spec))
    env = dict(os.environ)
    env["JUPYTER_PATH"] = str(where / "path")
    env["JUPYTER_DATA_DIR"] = str(where / "data")
    return env


#: nbclient as the notebook tests run it. nbclient waits 4 s for a cell's last outputs after
#: its reply and then carries on without them, with only a log line; on a loaded machine
#: that made its notebook differ from ours now and then. It waits longer here, and says so.
NBCLIENT_OPTIONS: dict[str, Any] = {"iopub_timeout": 30, "raise_on_iopub_timeout": True}


def joined_streams(outputs: list[Any]) -> list[Any]:
    """The outputs with each run of stream outputs of one name joined into one. Where a stream
    message ends depends on the kernel's timing (ipykernel may send print's text and its
    newline apart on a loaded machine), and two runs of a notebook are two kernels: notebooks
    compared across runs are compared with their streams joined. Joins into the outputs given
    (callers pass copies)."""
    joined: list[Any] = []
    for output in outputs:
        last = joined[-1] if joined else None
        if (
            last is not None
            and output.get("output_type") == last.get("output_type") == "stream"
            and output.get("name") == last.get("name")
        ):
            last["text"] += output["text"]
        else:
            joined.append(output)
    return joined
