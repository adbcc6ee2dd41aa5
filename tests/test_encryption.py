"""CurveZMQ: which kernels a manager encrypts (jupyter_client's policy), that nothing readable
crosses the wire, that jupyter_client and runtimelib talk to each other's encrypted kernels,
and that a mismatch fails fast with its reason instead of a timeout."""

from __future__ import annotations

import contextlib
import os
import select
import socket
import stat
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from runtimelib import (
    AsyncKernelManager,
    ConnectionInfo,
    KernelClient,
    KernelManager,
    KernelSpec,
    errors,
    find_kernelspec,
)
from runtimelib.connection import curve_keypair
from runtimelib.manager import KernelProcess
from runtimelib.transports.zmq import client_socket, watched_socket

pytestmark = pytest.mark.usefixtures("jupyter_env")

T = 30
#: Code whose output is a marker that the code itself does not contain.
MARKER_CODE = "print('SECRET'.lower() + '-' + str(6 * 7))"
MARKER = b"secret-42"


def _liar(name: str = "xpython") -> KernelSpec:
    """A kernelspec that claims CurveZMQ for a kernel that does not speak it."""
    spec = find_kernelspec(name)
    claim = {**spec.metadata, "supported_encryption": ["curve"]}
    return msgspec.structs.replace(spec, name="liar", metadata=claim)


@pytest.mark.parametrize(
    ("kernel", "code", "encrypted"),
    [
        ("python3", "print('hi')", True),
        ("runtimelib-python", "print('hi')", True),
        ("runtimelib-echo", "hi", True),
        ("xpython", "print('hi')", False),  # its spec does not declare curve: plain
    ],
)
def test_auto_encrypts_the_kernels_whose_spec_declares_curve(
    kernel: str, code: str, encrypted: bool
) -> None:
    with KernelManager(kernel, transport_encryption="auto") as km, km.client() as kc:
        assert kc.execute(code, timeout=T).stdout == "hi\n"
        assert km.connection_info is not None
        assert km.connection_info.encrypted is encrypted
        assert km.connection_file is not None
        on_disk = ConnectionInfo.from_file(km.connection_file)
        assert (on_disk.curve_secret_key is not None) is encrypted
        assert stat.S_IMODE(km.connection_file.stat().st_mode) == 0o600


def test_disabled_starts_a_declaring_kernel_plain() -> None:
    with KernelManager("runtimelib-python", transport_encryption="disabled") as km:
        assert km.connection_info is not None
        assert not km.connection_info.encrypted


def test_required_refuses_a_spec_without_curve_before_launch(
    tmp_path: Path, jupyter_env: Path
) -> None:
    marker = tmp_path / "ran"
    spec = KernelSpec(
        name="plain",
        resource_dir=tmp_path,
        argv=[sys.executable, "-c", f"open({str(marker)!r}, 'w')"],
    )
    with pytest.raises(errors.KernelLaunchError, match="does not declare 'curve'"):
        KernelManager(spec=spec, transport_encryption="required").start()
    assert not marker.exists()
    assert list(jupyter_env.glob("kernel-*.json")) == []


def test_an_unknown_policy_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="transport_encryption must be one of"):
        KernelManager("runtimelib-python", transport_encryption="always")  # type: ignore[arg-type]


def test_restart_keeps_the_keys_and_the_client() -> None:
    manager = KernelManager("runtimelib-python", transport_encryption="required")
    with manager as km, km.client() as kc:
        assert km.connection_info is not None
        keys = (km.connection_info.curve_public_key, km.connection_info.curve_secret_key)
        km.restart()
        assert kc.execute("print('again')", timeout=T).stdout == "again\n"
        assert km.connection_file is not None
        on_disk = ConnectionInfo.from_file(km.connection_file)
        assert (on_disk.curve_public_key, on_disk.curve_secret_key) == keys
        assert stat.S_IMODE(km.connection_file.stat().st_mode) == 0o600


@pytest.mark.parametrize("policy", ["auto", "required"])
def test_a_spec_that_claims_curve_for_a_plain_kernel_fails_fast_with_the_reason(
    policy: str,
) -> None:
    km = KernelManager(spec=_liar(), transport_encryption=policy, startup_timeout=T)  # type: ignore[arg-type]
    with pytest.raises(errors.KernelLaunchError) as info:
        km.start()
    # Not the startup timeout: the handshake said what is wrong. (jupyter_env checks that no
    # connection file is left; the manager ended the kernel.)
    assert "does not speak CurveZMQ" in str(info.value)
    assert f"not ready in {T}" not in str(info.value)
    assert not km.is_alive()


@pytest.mark.anyio
async def test_the_async_manager_fails_as_fast() -> None:
    km = AsyncKernelManager(spec=_liar(), transport_encryption="auto", startup_timeout=T)
    with pytest.raises(errors.KernelLaunchError, match="does not speak CurveZMQ"):
        await km.start()
    assert not km.is_alive()


@pytest.fixture
def encrypted_echo(tmp_path: Path) -> Iterator[ConnectionInfo]:
    """Our echo kernel, started by hand as a CurveZMQ server."""
    info = ConnectionInfo.new(curve_keys=curve_keypair())
    path = tmp_path / "kernel.json"
    info.write(path)
    process = KernelProcess(
        [sys.executable, "-m", "runtimelib.kernel.echo", "-f", str(path)],
        env=os.environ,
        connection_file=path,
    )
    try:
        with KernelClient(info) as kc:  # ready: its sockets are bound
            kc.kernel_info(timeout=T)
        yield info
    finally:
        process.kill()
        process.wait(10)
        process.release()


def _handshake_failure(info: ConnectionInfo) -> str:
    sock, watch = watched_socket(info, "shell", session_id="probe")
    try:
        for _ in range(200):
            if (failure := watch.failure()) is not None:
                return failure
            assert not watch.succeeded, "the handshake succeeded"
            time.sleep(0.05)
        raise AssertionError("no handshake failure reported in 10 s")
    finally:
        watch.close()
        sock.close(0)


def test_a_stale_key_and_a_missing_key_are_told_apart(encrypted_echo: ConnectionInfo) -> None:
    other_public, _ = curve_keypair()
    stale = msgspec.structs.replace(encrypted_echo, curve_public_key=other_public)
    assert "its key is not the one in the connection info" in _handshake_failure(stale)
    keyless = msgspec.structs.replace(encrypted_echo, curve_public_key=None, curve_secret_key=None)
    assert "the kernel is encrypted (CurveZMQ)" in _handshake_failure(keyless)


# -- nothing readable on the wire -----------------------------------------------------------------


class _Recorder:
    """A TCP proxy for every channel of a kernel, keeping every byte that passes."""

    def __init__(self, target: ConnectionInfo) -> None:
        self.seen = bytearray()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        ports = {}
        for channel, port in target.ports.items():
            listener = socket.create_server(("127.0.0.1", 0))
            ports[f"{channel}_port"] = listener.getsockname()[1]
            thread = threading.Thread(
                target=self._serve, args=(listener, port), daemon=True, name=f"proxy-{channel}"
            )
            self._threads.append(thread)
        self.info = msgspec.structs.replace(target, **ports)

    def __enter__(self) -> _Recorder:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)

    def _serve(self, listener: socket.socket, port: int) -> None:
        links: dict[socket.socket, socket.socket] = {}
        with listener:
            while not self._stop.is_set():
                ready, _, _ = select.select([listener, *links], [], [], 0.05)
                for sock in ready:
                    if sock is listener:
                        near, _ = listener.accept()
                        far = socket.create_connection(("127.0.0.1", port))
                        links[near], links[far] = far, near
                        continue
                    data = b""
                    with contextlib.suppress(OSError):
                        data = sock.recv(65536)
                    peer = links.get(sock)
                    if not data or peer is None:
                        for end in (sock, peer):
                            if end is not None:
                                links.pop(end, None)
                                end.close()
                        continue
                    with self._lock:
                        self.seen += data
                    with contextlib.suppress(OSError):
                        peer.sendall(data)
            for sock in links:
                sock.close()


@pytest.mark.parametrize("kernel", ["python3", "runtimelib-python"])
def test_encrypted_traffic_never_shows_the_output_and_plain_traffic_does(kernel: str) -> None:
    for policy, readable in (("required", False), ("disabled", True)):
        with KernelManager(kernel, transport_encryption=policy) as km:  # type: ignore[arg-type]
            assert km.connection_info is not None
            with _Recorder(km.connection_info) as wire, KernelClient(wire.info) as kc:
                assert kc.execute(MARKER_CODE, timeout=T).stdout == "secret-42\n"
            assert (MARKER in wire.seen) is readable, policy
            assert (b"SECRET" in wire.seen) is readable, policy


def test_a_subscriber_without_the_key_hears_nothing() -> None:
    with KernelManager("runtimelib-python", transport_encryption="required") as km:
        assert km.connection_info is not None
        plain = msgspec.structs.replace(
            km.connection_info, curve_public_key=None, curve_secret_key=None
        )
        eavesdropper = client_socket(plain, "iopub", session_id="eve")
        try:
            with km.client() as kc:
                for _ in range(5):
                    kc.execute(MARKER_CODE, timeout=T)
            assert eavesdropper.poll(500) == 0
        finally:
            eavesdropper.close(0)


def test_encryption_over_ipc(jupyter_env: Path) -> None:
    with (
        KernelManager("runtimelib-python", transport="ipc", transport_encryption="required") as km,
        km.client() as kc,
    ):
        assert km.connection_info is not None
        assert km.connection_info.encrypted
        assert km.connection_info.transport == "ipc"
        assert kc.execute(MARKER_CODE, timeout=T).stdout == "secret-42\n"
        sockets = [Path(f"{km.connection_info.ip}-{p}") for p in km.connection_info.ports.values()]
        assert all(path.exists() for path in sockets)
    assert not any(path.exists() for path in sockets)


# -- jupyter_client, both ways --------------------------------------------------------------------


def test_jupyter_clients_client_talks_to_our_encrypted_kernel() -> None:
    from jupyter_client.blocking.client import BlockingKernelClient

    with KernelManager("python3", transport_encryption="required") as km:
        theirs = BlockingKernelClient(connection_file=str(km.connection_file))
        theirs.load_connection_file()
        theirs.start_channels()
        try:
            reply = theirs.execute_interactive(MARKER_CODE, timeout=T, output_hook=lambda m: None)
            assert reply["content"]["status"] == "ok"
        finally:
            theirs.stop_channels()


def test_our_client_talks_to_jupyter_clients_encrypted_kernel() -> None:
    from jupyter_client.manager import KernelManager as JupyterKernelManager

    theirs = JupyterKernelManager(kernel_name="runtimelib-python", transport_encryption="required")
    theirs.start_kernel()
    try:
        info = ConnectionInfo.from_file(theirs.connection_file)
        assert info.encrypted
        with KernelClient(info) as kc:
            assert kc.execute(MARKER_CODE, timeout=T).stdout == "secret-42\n"
    finally:
        theirs.shutdown_kernel(now=True)


# -- the command ----------------------------------------------------------------------------------


def test_the_command_runs_encrypted_and_refuses_in_one_line(tmp_path: Path) -> None:
    from .test_cli import cli

    done = cli("run", "--encryption", "required", "-k", "runtimelib-python", "-c", MARKER_CODE)
    assert (done.returncode, done.stdout) == (0, "secret-42\n")
    refused = cli("run", "--encryption", "required", "-k", "xpython", "-c", "1")
    assert refused.returncode == 4
    assert refused.stderr.count("\n") == 1
    assert "does not declare 'curve'" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_a_kernel_started_encrypted_is_reached_by_the_other_commands(jupyter_env: Path) -> None:
    import json

    from .test_cli import cli

    started = cli("start", "--encryption", "required", "-k", "runtimelib-python", "--json")
    assert started.returncode == 0, started.stderr
    kernel_id = json.loads(started.stdout)["id"]
    try:
        (path,) = jupyter_env.glob("kernel-*.json")
        assert ConnectionInfo.from_file(path).encrypted
        done = cli("exec", kernel_id, "-c", MARKER_CODE)
        assert (done.returncode, done.stdout) == (0, "secret-42\n")
        (listed,) = json.loads(cli("ps", "--json").stdout)
        assert (listed["id"], listed["alive"], listed["encrypted"]) == (kernel_id, True, True)
    finally:
        assert cli("stop", kernel_id).returncode == 0


def test_a_client_with_a_stale_key_fails_fast_with_the_reason(
    encrypted_echo: ConnectionInfo,
) -> None:
    other_public, _ = curve_keypair()
    stale = msgspec.structs.replace(encrypted_echo, curve_public_key=other_public)
    with pytest.raises(errors.EncryptionError, match="its key is not the one"):  # noqa: SIM117
        with KernelClient(stale, ready_timeout=T):
            pass


@pytest.mark.anyio
async def test_an_async_client_without_the_key_fails_fast_with_the_reason(
    encrypted_echo: ConnectionInfo,
) -> None:
    from runtimelib import AsyncKernelClient

    keyless = msgspec.structs.replace(encrypted_echo, curve_public_key=None, curve_secret_key=None)
    with pytest.raises(errors.EncryptionError, match="the kernel is encrypted"):
        async with AsyncKernelClient(keyless, ready_timeout=T):
            pass
