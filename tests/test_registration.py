"""The startup handshake (JEP 66): kernels that bind their own ports and report them on a
registration socket, so that no port can be taken between its pick and the kernel's bind."""

from __future__ import annotations

import random
import socket
import stat
import sys
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
import zmq

from runtimelib import AsyncKernelManager, ConnectionInfo, KernelManager, errors, find_kernelspec
from runtimelib.errors import RemoteProtocolError
from runtimelib.kernelspec import KernelSpec
from runtimelib.protocol import DELIMITER, Signer
from runtimelib.protocol.registration import (
    acknowledgement,
    check_acknowledgement,
    read_registration,
    registration,
)
from runtimelib.transports.zmq.registration import RegistrationSocket

pytestmark = pytest.mark.usefixtures("jupyter_env")

T = 30.0
PORTS = {"control": 50001, "shell": 50002, "stdin": 50003, "iopub": 50004, "hb": 50005}


def _spec(name: str, **changes: object) -> KernelSpec:
    spec = find_kernelspec(name)
    return msgspec.structs.replace(spec, name=f"{name}-copy", **changes)


# -- the messages --------------------------------------------------------------------------------


def test_a_registration_round_trips_with_ports_as_strings() -> None:
    signer = Signer(b"key")
    frames = registration(signer, "k1", PORTS)
    assert frames[0] == DELIMITER
    assert b'"shell_port":"50002"' in frames[2]  # strings, as xeus sends and reads them
    assert read_registration(frames, signer, "k1") == PORTS
    check_acknowledgement(acknowledgement(signer), signer)
    # A DEALER's view of the answer may start with an empty routing frame.
    check_acknowledgement([b"", *acknowledgement(signer)], signer)


def test_integer_ports_are_read_too() -> None:
    signer = Signer(b"key")
    body = msgspec.json.encode({"kernel_id": "k1", **{f"{k}_port": v for k, v in PORTS.items()}})
    assert read_registration([DELIMITER, signer.sign([body]), body], signer, "k1") == PORTS


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ({"kernel_id": "other"}, "is for kernel 'other'"),
        ({"shell_port": "0"}, "out of range"),
        ({"shell_port": "65536"}, "out of range"),
        ({"shell_port": "-1"}, "not a port"),
        ({"shell_port": True}, "not a port"),
        ({"shell_port": "123456789012345678901234567890"}, "not a port"),
        ({"hb_port": None}, "not a port"),
    ],
)
def test_a_wrong_registration_says_what_is_wrong(content: dict[str, object], problem: str) -> None:
    signer = Signer(b"key")
    fields = {"kernel_id": "k1", **{f"{k}_port": str(v) for k, v in PORTS.items()}, **content}
    body = msgspec.json.encode(fields)
    with pytest.raises(RemoteProtocolError, match=problem):
        read_registration([DELIMITER, signer.sign([body]), body], signer, "k1")


@pytest.mark.parametrize(
    "frames",
    [
        [],
        [DELIMITER],
        [DELIMITER, b"sig"],
        [b"no delimiter", b"x", b"y"],
        [DELIMITER, b"", b"{}"],
        [DELIMITER, b"0" * 64, b"{}"],
        [DELIMITER, b"x", b"x" * (65 * 1024)],
    ],
)
def test_unsigned_or_malformed_frames_are_refused(frames: list[bytes]) -> None:
    with pytest.raises(RemoteProtocolError):
        read_registration(frames, Signer(b"key"), "k1")
    with pytest.raises(RemoteProtocolError):
        check_acknowledgement(frames, Signer(b"key"))


def test_a_signed_non_object_is_refused() -> None:
    signer = Signer(b"key")
    for body in (b"[1, 2]", b"not json"):
        with pytest.raises(RemoteProtocolError, match="JSON"):
            read_registration([DELIMITER, signer.sign([body]), body], signer, "k1")


def test_the_registration_socket_ignores_forgeries_and_takes_the_kernels_report() -> None:
    info = ConnectionInfo.new(free_ports=False)
    context = zmq.Context.instance()
    registrar = RegistrationSocket(info, "k1", context)
    kernel = context.socket(zmq.DEALER)
    kernel.linger = 0
    try:
        kernel.connect(f"tcp://127.0.0.1:{registrar.port}")
        mine = Signer(info.key_bytes)
        kernel.send_multipart(registration(Signer(b"not the key"), "k1", PORTS))
        kernel.send_multipart(registration(mine, "another kernel", PORTS))
        kernel.send_multipart([b"garbage"])
        kernel.send_multipart(registration(mine, "k1", PORTS))
        deadline = time.monotonic() + T
        while (ports := registrar.receive()) is None:
            assert time.monotonic() < deadline
            registrar.socket.poll(100)
        assert ports == PORTS
        assert kernel.poll(int(T * 1000))  # acknowledged, once, for the real report
        check_acknowledgement(kernel.recv_multipart(), mine)
        assert not kernel.poll(200)
    finally:
        kernel.close()
        registrar.close()


# -- the files -----------------------------------------------------------------------------------


def test_a_registration_file_has_no_ports_and_a_string_port(tmp_path: Path) -> None:
    info = ConnectionInfo.new(free_ports=False, curve_keys=None)
    path = tmp_path / "kernel.json"
    info.for_registration("k1", 4321).write(path)
    data = msgspec.json.decode(path.read_bytes())
    assert not any(key.endswith("_port") and key != "registration_port" for key in data)
    assert (data["kernel_id"], data["registration_ip"], data["registration_port"]) == (
        "k1",
        "127.0.0.1",
        "4321",
    )
    read = ConnectionInfo.from_file(path)
    assert read.registration == ("k1", "tcp://127.0.0.1:4321")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    done = read.registered(PORTS)
    assert done.registration is None
    assert done.shell_port == 50002
    assert "kernel_id" not in done.to_dict()


def test_a_kernel_still_registering_is_listed_as_starting(jupyter_env: Path) -> None:
    from runtimelib.manager import list_running_kernels, prune_stale_kernels

    info = ConnectionInfo.new(free_ports=False).for_registration("k1", 4321)
    runtime = jupyter_env  # the runtime dir
    runtime.mkdir(parents=True, exist_ok=True)
    path = runtime / "kernel-k1.json"
    info.write(path)
    (found,) = list_running_kernels(runtime)
    assert (found.kernel_id, found.alive, found.error) == ("k1", False, "starting (no ports yet)")
    assert prune_stale_kernels(runtime).too_young == [found]  # it may still be starting
    path.unlink()


def test_which_specs_do_the_handshake() -> None:
    assert find_kernelspec("runtimelib-python").supports_registration
    assert find_kernelspec("runtimelib-echo").supports_registration
    # ipykernel says 5.5 and does not register; 5.5 never counts.
    assert not find_kernelspec("python3").supports_registration
    assert not _spec("python3", kernel_protocol_version="5.5").supports_registration
    assert _spec("xpython", kernel_protocol_version="5.6").supports_registration
    assert _spec("xpython", kernel_protocol_version="6.0").supports_registration
    assert not _spec("xpython", kernel_protocol_version="five").supports_registration


# -- managers ------------------------------------------------------------------------------------


def _no_port_picking(monkeypatch: pytest.MonkeyPatch) -> None:
    """Picking ports here fails the test: the kernel must bind its own."""
    from runtimelib import connection

    def refuse(*args: object, **kwargs: object) -> list[int]:
        raise AssertionError("ports were picked for a kernel that binds its own")

    monkeypatch.setattr(connection, "find_free_ports", refuse)


@pytest.mark.parametrize(("kernel", "code"), [("runtimelib-python", "print(6*7)")])
def test_our_kernels_bind_their_own_ports_and_keep_them_across_restarts(
    kernel: str, code: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_port_picking(monkeypatch)
    with KernelManager(kernel) as km, km.client() as kc:
        assert km.connection_info is not None
        assert km.connection_file is not None
        ports = km.connection_info.ports
        assert all(ports.values())
        on_disk = ConnectionInfo.from_file(km.connection_file)
        assert on_disk.ports == ports
        assert on_disk.registration is None
        assert stat.S_IMODE(km.connection_file.stat().st_mode) == 0o600
        assert kc.execute(code, timeout=T).stdout == "42\n"
        km.restart()  # same ports: its clients reconnect by themselves
        assert km.connection_info.ports == ports
        assert kc.execute(code, timeout=T).stdout == "42\n"


@pytest.mark.anyio
async def test_the_async_manager_waits_for_the_registration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _no_port_picking(monkeypatch)
    async with AsyncKernelManager("runtimelib-echo") as km, km.client() as kc:
        assert km.connection_info is not None
        assert all(km.connection_info.ports.values())
        assert (await kc.execute("hi", timeout=T)).stdout == "hi\n"


def test_the_handshake_can_be_forced_or_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = _spec("runtimelib-echo", metadata={})
    assert not plain.supports_registration
    with monkeypatch.context() as patched:
        _no_port_picking(patched)
        with KernelManager(spec=plain, startup_handshake=True) as km, km.client() as kc:
            assert kc.execute("forced", timeout=T).stdout == "forced\n"
    from runtimelib import connection

    picks: list[int] = []
    pick = connection.find_free_ports

    def counted(*args: Any, **kwargs: Any) -> list[int]:
        picks.append(1)
        return pick(*args, **kwargs)

    monkeypatch.setattr(connection, "find_free_ports", counted)
    with KernelManager("runtimelib-echo", startup_handshake=False) as km, km.client() as kc:
        assert picks == [1]  # ports picked here, for a spec that could have registered
        assert kc.execute("refused", timeout=T).stdout == "refused\n"


def test_xeus_python_registers_when_its_spec_says_protocol_5_6() -> None:
    spec = _spec("xpython", kernel_protocol_version="5.6")
    with KernelManager(spec=spec) as km, km.client() as kc:
        assert km.kernel_info is not None
        assert km.kernel_info.protocol_version == "5.6"
        assert kc.execute("print(6*7)", timeout=T).stdout == "42\n"


def test_encrypted_kernels_register_too() -> None:
    with KernelManager("runtimelib-echo", transport_encryption="required") as km:
        assert km.connection_info is not None
        assert km.connection_info.encrypted
        assert all(km.connection_info.ports.values())
        with km.client() as kc:
            assert kc.execute("sealed", timeout=T).stdout == "sealed\n"


def test_an_address_that_cannot_be_bound_fails_before_launch(jupyter_env: Path) -> None:
    # 203.0.113.0/24 is for documentation: no interface here has it.
    manager = KernelManager("runtimelib-echo", ip="203.0.113.7")
    with pytest.raises(errors.KernelLaunchError, match="registration socket"):
        manager.start()
    assert manager.process is None
    assert list(jupyter_env.glob("kernel-*.json")) == []


SILENT = "import sys, time; print('never registering', flush=True); time.sleep(60)"
QUITTER = "import sys; print('giving up', flush=True); sys.exit(3)"


def test_a_kernel_that_never_registers_times_out_with_its_output() -> None:
    spec = _spec("runtimelib-echo", argv=[sys.executable, "-c", SILENT, "{connection_file}"])
    manager = KernelManager(spec=spec, startup_timeout=3.0)
    started = time.monotonic()
    with pytest.raises(errors.KernelTimeoutError, match="never registering"):
        manager.start()
    assert time.monotonic() - started < 15
    assert not manager.is_alive()
    assert manager.connection_file is not None
    assert not manager.connection_file.exists()


@pytest.mark.anyio
async def test_a_kernel_that_exits_before_registering_fails_at_once() -> None:
    spec = _spec("runtimelib-echo", argv=[sys.executable, "-c", QUITTER, "{connection_file}"])
    manager = AsyncKernelManager(spec=spec, startup_timeout=T)
    started = time.monotonic()
    with pytest.raises(errors.KernelLaunchError, match="giving up"):
        await manager.start()
    assert time.monotonic() - started < 15
    assert manager.connection_file is not None
    assert not manager.connection_file.exists()


def test_a_kernel_refuses_an_acknowledgement_it_cannot_verify(tmp_path: Path) -> None:
    import subprocess

    info = ConnectionInfo.new(free_ports=False)
    context = zmq.Context.instance()
    router = context.socket(zmq.ROUTER)
    router.linger = 0
    port = router.bind_to_random_port("tcp://127.0.0.1")
    path = tmp_path / "kernel.json"
    info.for_registration("k1", port).write(path)
    kernel = subprocess.Popen(
        [sys.executable, "-m", "runtimelib.kernel.echo", "-f", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert router.poll(int(T * 1000))
        identity, *_ = router.recv_multipart()
        router.send_multipart([identity, *acknowledgement(Signer(b"not the key"))])
        output, _ = kernel.communicate(timeout=T)
        assert kernel.returncode != 0
        assert b"acknowledgement" in output
    finally:
        kernel.kill()
        kernel.wait()
        router.close()


# -- many at once, with the ports churning ---------------------------------------------------------


def _churn(stop: threading.Event, bound: list[int]) -> None:
    """Bind and release ports of the range kernels bind in, as fast as possible."""
    while not stop.is_set():
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            sock.listen()
            bound.append(sock.getsockname()[1])
            time.sleep(random.random() / 1000)


def test_fifty_concurrent_starts_never_lose_a_port(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_port_picking(monkeypatch)
    stop = threading.Event()
    churned: list[int] = []
    churner = threading.Thread(target=_churn, args=(stop, churned), daemon=True)
    managers = [AsyncKernelManager("runtimelib-echo", startup_timeout=120) for _ in range(50)]

    async def main() -> None:
        try:
            async with anyio.create_task_group() as tg:
                for km in managers:
                    tg.start_soon(km.start)
            ports = [port for km in managers for port in _ports(km)]
            assert len(ports) == len(set(ports)) == 250
            assert len(churned) > 100  # the churn really ran alongside
            for km in managers[:5]:
                async with km.client() as kc:
                    assert (await kc.execute("ok", timeout=T)).stdout == "ok\n"
        finally:
            with anyio.CancelScope(shield=True):
                async with anyio.create_task_group() as tg:
                    for km in managers:
                        tg.start_soon(km.shutdown)

    churner.start()
    try:
        anyio.run(main)
    finally:
        stop.set()
        churner.join()


def _ports(km: AsyncKernelManager) -> list[int]:
    assert km.connection_info is not None
    return list(km.connection_info.ports.values())
