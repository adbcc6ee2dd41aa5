"""Tests for runtimelib.connection: connection files, endpoints and free ports."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

import msgspec
import pytest

from runtimelib import connection
from runtimelib.connection import (
    ConnectionInfo,
    InsecureConnectionFileWarning,
    find_free_ports,
)
from runtimelib.errors import ConnectionFileError, SignatureSchemeError

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes and symlinks")

# A public/secret Z85 keypair shape (40 characters each); the values only need to round-trip.
CURVE_PUBLIC = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
CURVE_SECRET = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6"


def sample(**overrides: Any) -> ConnectionInfo:
    fields: dict[str, Any] = {
        "shell_port": 50001,
        "iopub_port": 50002,
        "stdin_port": 50003,
        "control_port": 50004,
        "hb_port": 50005,
        "key": "a0436f6c-1916-498b-8eb9-e81ab9368e84",
        "kernel_name": "python3",
    }
    fields.update(overrides)
    return ConnectionInfo(**fields)


def sample_dict(**overrides: Any) -> dict[str, Any]:
    d = sample().to_dict()
    d.update(overrides)
    return d


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


# -- round trips ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "info",
    [
        sample(),
        sample(transport="ipc", ip="/tmp/kernel-abc"),
        sample(ip="::1", key="", signature_scheme="hmac-sha512"),
        sample(curve_public_key=CURVE_PUBLIC, curve_secret_key=CURVE_SECRET),
        sample(extra={"jupyter_session": "nb.ipynb", "nested": {"a": [1, 2.5, None]}}),
    ],
)
def test_write_then_read_gives_equal_info(tmp_path: Path, info: ConnectionInfo) -> None:
    path = tmp_path / "kernel.json"
    info.write(path)
    assert ConnectionInfo.from_file(path) == info
    assert ConnectionInfo.from_json(path.read_bytes()) == info
    assert ConnectionInfo.from_dict(info.to_dict()) == info


def test_unknown_keys_survive_a_file_round_trip(tmp_path: Path) -> None:
    original = sample_dict(jupyter_session="/home/me/nb.ipynb", extra={"x": 1}, custom=[1, "a"])
    src = tmp_path / "in.json"
    src.write_text(json.dumps(original))
    src.chmod(0o600)
    info = ConnectionInfo.from_file(src)
    assert info.extra == {
        "jupyter_session": "/home/me/nb.ipynb",
        "extra": {"x": 1},
        "custom": [1, "a"],
    }
    dst = tmp_path / "out.json"
    info.write(dst)
    assert json.loads(dst.read_text()) == original


def test_curve_keys_use_jupyter_names_and_are_omitted_when_unset() -> None:
    with_curve = sample(curve_public_key=CURVE_PUBLIC, curve_secret_key=CURVE_SECRET).to_dict()
    assert with_curve["curve_publickey"] == CURVE_PUBLIC
    assert with_curve["curve_secretkey"] == CURVE_SECRET
    without = sample().to_dict()
    assert not any(k.startswith("curve") for k in without)


def test_to_json_is_the_json_of_to_dict() -> None:
    info = sample(extra={"z": True})
    assert json.loads(info.to_json()) == info.to_dict()


def test_extra_must_not_shadow_modelled_keys() -> None:
    with pytest.raises(ValueError, match="shell_port"):
        sample(extra={"shell_port": 1})


def test_repr_hides_the_key() -> None:
    info = sample(key="super-secret-key")
    assert "super-secret-key" not in repr(info)
    assert "50001" in repr(info)


def test_key_bytes() -> None:
    assert sample(key="é-key").key_bytes == "é-key".encode()
    assert sample(key="").key_bytes == b""


# -- writing -------------------------------------------------------------------------------------


@posix_only
def test_written_file_has_mode_0600_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o000)
    try:
        sample().write(tmp_path / "k.json")
    finally:
        os.umask(old)
    assert mode_of(tmp_path / "k.json") == 0o600


@posix_only
def test_write_replaces_an_existing_file_atomically(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    path.write_text("old content that is not json")
    path.chmod(0o644)
    old_inode = os.stat(path).st_ino
    info = sample()
    info.write(path)
    assert ConnectionInfo.from_file(path) == info
    # A new inode shows the file was swapped in by rename, not rewritten in place.
    assert os.stat(path).st_ino != old_inode
    assert mode_of(path) == 0o600
    # No temporary files are left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.json"]


@posix_only
def test_write_does_not_follow_a_symlink_at_the_target(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("do not touch")
    victim.chmod(0o644)
    link = tmp_path / "k.json"
    link.symlink_to(victim)
    info = sample()
    info.write(link)
    assert victim.read_text() == "do not touch"
    assert mode_of(victim) == 0o644
    assert not link.is_symlink()
    assert stat.S_ISREG(os.lstat(link).st_mode)
    assert ConnectionInfo.from_file(link) == info


@posix_only
def test_write_over_a_dangling_symlink_creates_nothing_at_its_target(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.json"
    link = tmp_path / "k.json"
    link.symlink_to(target)
    sample().write(link)
    assert not target.exists()
    assert not link.is_symlink()


def test_write_into_missing_directory_raises(tmp_path: Path) -> None:
    path = tmp_path / "no" / "such" / "dir" / "k.json"
    with pytest.raises(ConnectionFileError, match="cannot write") as excinfo:
        sample().write(path)
    assert isinstance(excinfo.value.__cause__, OSError)
    assert not path.parent.exists()


def test_write_onto_a_directory_raises_and_leaves_no_temp_file(tmp_path: Path) -> None:
    (tmp_path / "k.json").mkdir()
    with pytest.raises(ConnectionFileError):
        sample().write(tmp_path / "k.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.json"]


def test_unencodable_extra_raises_connection_file_error(tmp_path: Path) -> None:
    info = sample(extra={"bad": object()})
    with pytest.raises(ConnectionFileError):
        info.write(tmp_path / "k.json")
    assert not (tmp_path / "k.json").exists()


# -- reading -------------------------------------------------------------------------------------


@posix_only
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o666])
def test_file_readable_by_others_warns_but_is_read(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "k.json"
    sample().write(path)
    path.chmod(mode)
    with pytest.warns(InsecureConnectionFileWarning, match="other users"):
        info = ConnectionInfo.from_file(path)
    assert info == sample()


@posix_only
@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_private_file_does_not_warn(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "k.json"
    sample().write(path)
    path.chmod(mode)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ConnectionInfo.from_file(path) == sample()


def _without(d: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k != key}


BAD_CONTENTS: list[tuple[str, bytes]] = [
    ("not json", b"{this is not json"),
    ("empty", b""),
    ("not utf-8", b'{"key": "\xff"}'),
    ("lone surrogate", '{"key": "\ud800"}'.encode("utf-8", "surrogatepass")),
    ("array", b"[1, 2, 3]"),
    ("string", b'"hello"'),
    ("missing shell_port", json.dumps(_without(sample_dict(), "shell_port")).encode()),
    ("missing hb_port", json.dumps(_without(sample_dict(), "hb_port")).encode()),
    ("missing key", json.dumps(_without(sample_dict(), "key")).encode()),
    ("port too large", json.dumps(sample_dict(iopub_port=65536)).encode()),
    ("negative port", json.dumps(sample_dict(control_port=-1)).encode()),
    ("port as string", json.dumps(sample_dict(shell_port="50001")).encode()),
    ("port as float", json.dumps(sample_dict(shell_port=50001.0)).encode()),
    ("port as bool", json.dumps(sample_dict(hb_port=True)).encode()),
    ("port null", json.dumps(sample_dict(stdin_port=None)).encode()),
    ("key not a string", json.dumps(sample_dict(key=123)).encode()),
    ("ip not a string", json.dumps(sample_dict(ip=["127.0.0.1"])).encode()),
    ("unknown transport", json.dumps(sample_dict(transport="udp")).encode()),
    ("bad scheme", json.dumps(sample_dict(signature_scheme="hmac-nosuchhash")).encode()),
    ("scheme not hmac", json.dumps(sample_dict(signature_scheme="sha256")).encode()),
]


@pytest.mark.parametrize(("label", "content"), BAD_CONTENTS, ids=[c[0] for c in BAD_CONTENTS])
def test_invalid_file_raises_with_path(tmp_path: Path, label: str, content: bytes) -> None:
    path = tmp_path / "broken-kernel.json"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(ConnectionFileError, match=r"broken-kernel\.json") as excinfo:
        ConnectionInfo.from_file(path)
    # The foreign error that caused it is kept for debugging.
    assert excinfo.value.__cause__ is not None


@pytest.mark.parametrize(("label", "content"), BAD_CONTENTS, ids=[c[0] for c in BAD_CONTENTS])
def test_invalid_json_text_raises(label: str, content: bytes) -> None:
    with pytest.raises(ConnectionFileError):
        ConnectionInfo.from_json(content)


def test_unencodable_str_raises() -> None:
    with pytest.raises(ConnectionFileError):
        ConnectionInfo.from_json('{"key": "\ud800"}')


def test_bad_scheme_in_file_keeps_the_scheme_error_as_cause() -> None:
    with pytest.raises(ConnectionFileError) as excinfo:
        ConnectionInfo.from_dict(sample_dict(signature_scheme="hmac-nosuchhash"))
    assert isinstance(excinfo.value.__cause__, SignatureSchemeError)


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(ConnectionFileError, match=r"absent\.json") as excinfo:
        ConnectionInfo.from_file(tmp_path / "absent.json")
    assert isinstance(excinfo.value.__cause__, FileNotFoundError)


def test_defaults_fill_optional_keys() -> None:
    minimal = {
        f"{c}_port": 1000 + i for i, c in enumerate(["shell", "iopub", "stdin", "control", "hb"])
    }
    info = ConnectionInfo.from_dict({**minimal, "key": "k"})
    assert (info.transport, info.ip, info.signature_scheme, info.kernel_name) == (
        "tcp",
        "127.0.0.1",
        "hmac-sha256",
        "",
    )
    assert info.curve_public_key is None
    assert info.extra == {}


def test_null_kernel_name_reads_as_empty() -> None:
    assert ConnectionInfo.from_dict(sample_dict(kernel_name=None)).kernel_name == ""


@pytest.mark.parametrize("scheme", ["hmac-sha256", "hmac-sha1", "hmac-md5", "hmac-sha3_256"])
def test_known_schemes_are_accepted(scheme: str) -> None:
    assert sample(signature_scheme=scheme).signature_scheme == scheme


@pytest.mark.parametrize(
    "scheme", ["", "sha256", "hmac-", "hmac-nosuch", "hmac-shake_128", "rsa-sha256"]
)
def test_bad_schemes_raise_signature_scheme_error(scheme: str) -> None:
    with pytest.raises(SignatureSchemeError):
        sample(signature_scheme=scheme)


@pytest.mark.parametrize(
    "overrides",
    [{"shell_port": 70000}, {"hb_port": -5}, {"transport": "udp"}, {"iopub_port": True}],
)
def test_direct_construction_is_validated(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies by field
        sample(**overrides)


# -- interoperability with jupyter_client --------------------------------------------------------


@pytest.mark.parametrize("curve", [False, True])
def test_reads_a_file_written_by_jupyter_client(tmp_path: Path, curve: bool) -> None:
    from jupyter_client.connect import write_connection_file

    path = tmp_path / "kernel-jc.json"
    kwargs: dict[str, Any] = {}
    if curve:
        kwargs = {
            "curve_publickey": CURVE_PUBLIC.encode(),
            "curve_secretkey": CURVE_SECRET.encode(),
        }
    _, cfg = write_connection_file(
        str(path),
        ip="127.0.0.1",
        key=b"0a1b2c3d-key",
        kernel_name="python3",
        signature_scheme="hmac-sha256",
        **kwargs,
    )
    with warnings.catch_warnings():
        # jupyter_client writes 0600 too, so no warning is expected.
        warnings.simplefilter("error")
        info = ConnectionInfo.from_file(path)
    assert info.shell_port == cfg["shell_port"]
    assert info.iopub_port == cfg["iopub_port"]
    assert info.stdin_port == cfg["stdin_port"]
    assert info.control_port == cfg["control_port"]
    assert info.hb_port == cfg["hb_port"]
    assert info.ip == "127.0.0.1"
    assert info.transport == "tcp"
    assert info.key == "0a1b2c3d-key"
    assert info.key_bytes == b"0a1b2c3d-key"
    assert info.kernel_name == "python3"
    assert info.signature_scheme == "hmac-sha256"
    assert info.extra == {}
    if curve:
        assert (info.curve_public_key, info.curve_secret_key) == (CURVE_PUBLIC, CURVE_SECRET)
    else:
        assert info.curve_public_key is None
    assert info.to_dict() == json.loads(path.read_text())


def test_jupyter_client_reads_a_file_we_wrote(tmp_path: Path) -> None:
    from jupyter_client.connect import ConnectionFileMixin

    info = sample(curve_public_key=CURVE_PUBLIC, curve_secret_key=CURVE_SECRET)
    path = tmp_path / "kernel-ours.json"
    info.write(path)
    loaded = json.loads(path.read_text())
    for key in [
        "shell_port",
        "iopub_port",
        "stdin_port",
        "control_port",
        "hb_port",
        "ip",
        "key",
        "transport",
        "signature_scheme",
        "kernel_name",
        "curve_publickey",
        "curve_secretkey",
    ]:
        assert key in loaded
    mixin = ConnectionFileMixin(connection_file=str(path))
    mixin.load_connection_file()
    assert mixin.shell_port == info.shell_port
    assert mixin.hb_port == info.hb_port
    assert mixin.session.key == info.key_bytes
    assert mixin.session.signature_scheme == info.signature_scheme
    assert mixin._make_url("shell") == info.shell_url
    assert mixin._make_url("iopub") == info.iopub_url
    assert mixin.curve_publickey == CURVE_PUBLIC.encode()


# -- endpoints -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("transport", "ip", "expected"),
    [
        (
            "tcp",
            "127.0.0.1",
            ["tcp://127.0.0.1:50001", "tcp://127.0.0.1:50002", "tcp://127.0.0.1:50003",
             "tcp://127.0.0.1:50004", "tcp://127.0.0.1:50005"],
        ),
        (
            "tcp",
            "::1",
            ["tcp://[::1]:50001", "tcp://[::1]:50002", "tcp://[::1]:50003",
             "tcp://[::1]:50004", "tcp://[::1]:50005"],
        ),
        (
            "tcp",
            "[fe80::1]",
            ["tcp://[fe80::1]:50001", "tcp://[fe80::1]:50002", "tcp://[fe80::1]:50003",
             "tcp://[fe80::1]:50004", "tcp://[fe80::1]:50005"],
        ),
        (
            "ipc",
            "/tmp/kernel-abc",
            ["ipc:///tmp/kernel-abc-50001", "ipc:///tmp/kernel-abc-50002",
             "ipc:///tmp/kernel-abc-50003", "ipc:///tmp/kernel-abc-50004",
             "ipc:///tmp/kernel-abc-50005"],
        ),
    ],
)  # fmt: skip
def test_endpoints(transport: str, ip: str, expected: list[str]) -> None:
    info = sample(transport=transport, ip=ip)
    channels = ["shell", "iopub", "stdin", "control", "hb"]
    assert [info.endpoint(c) for c in channels] == expected
    assert [
        info.shell_url,
        info.iopub_url,
        info.stdin_url,
        info.control_url,
        info.hb_url,
    ] == expected
    assert info.endpoint("heartbeat") == info.hb_url


@pytest.mark.parametrize("channel", ["", "Shell", "hb_port", "comm", "heart"])
def test_unknown_channel_raises(channel: str) -> None:
    with pytest.raises(ValueError, match="unknown channel"):
        sample().endpoint(channel)


def test_ports_property() -> None:
    assert sample().ports == {
        "shell": 50001,
        "iopub": 50002,
        "stdin": 50003,
        "control": 50004,
        "hb": 50005,
    }


# -- free ports ----------------------------------------------------------------------------------


def _ipv6_available() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.parametrize(
    "ip",
    [
        "127.0.0.1",
        pytest.param("::1", marks=pytest.mark.skipif(not _ipv6_available(), reason="no IPv6")),
    ],
)
def test_find_free_ports_are_distinct_and_bindable(ip: str) -> None:
    ports = find_free_ports(5, ip=ip)
    assert len(ports) == 5
    assert len(set(ports)) == 5
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    sockets = []
    try:
        for port in ports:
            assert 0 < port <= 65535
            s = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(s)
            s.bind((ip, port))
    finally:
        for s in sockets:
            s.close()


def test_find_free_ports_never_repeats_within_a_process() -> None:
    seen: list[int] = []
    for _ in range(50):
        seen.extend(find_free_ports(5))
    assert len(seen) == 250
    assert len(set(seen)) == 250


def test_find_free_ports_never_repeats_across_threads() -> None:
    results: list[list[int]] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(10):
            ports = find_free_ports(5)
            with lock:
                results.append(ports)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = [p for ports in results for p in ports]
    assert len(flat) == 400
    assert len(set(flat)) == 400


def _ephemeral_start() -> int | None:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


@pytest.mark.skipif(_ephemeral_start() is None, reason="no ip_local_port_range (not Linux)")
def test_free_ports_are_outside_the_ephemeral_range() -> None:
    """The OS gives outgoing connections ports from the ephemeral range: a kernel port drawn
    from it could be taken by a connection before the kernel binds it."""
    start = _ephemeral_start()
    assert start is not None
    ports = find_free_ports(50)
    assert all(start - 16384 <= port < start for port in ports), ports


DRAWS = """
import subprocess
import sys
from runtimelib import connection
connection._PORT_WINDOW = 2048  # a narrow window: without reservations draws would collide
sys.stdin.readline()  # every process draws at the same moment
print(" ".join(map(str, connection.find_free_ports(300))), flush=True)
sys.stdin.readline()  # and holds its ports until all have drawn
"""


@pytest.mark.skipif(_ephemeral_start() is None, reason="no ip_local_port_range (not Linux)")
def test_processes_drawing_ports_at_once_never_get_the_same_one() -> None:
    """Kernels started by different processes at the same moment (parallel notebook runs,
    test workers): no port goes to two of them, though each probe finds it free."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", DRAWS],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    try:
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        drawn = []
        for proc in procs:
            assert proc.stdout is not None
            drawn.append(set(map(int, proc.stdout.readline().split())))
        assert [len(ports) for ports in drawn] == [300] * 4
        shared = [a & b for i, a in enumerate(drawn) for b in drawn[i + 1 :]]
        assert all(not common for common in shared), shared
    finally:
        for proc in procs:
            proc.kill()
            proc.communicate()


@posix_only
def test_a_lock_directory_that_is_not_ours_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone put a link where the port locks go: no lock is taken through it, and ports
    are still found (the probe's bind is then the only check)."""
    import tempfile

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / f"runtimelib-ports-{os.getuid()}").symlink_to(elsewhere)
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path))
    connection._port_lock_dir.cache_clear()
    try:
        assert connection._port_lock_dir() is None
        assert len(set(find_free_ports(5))) == 5
        assert list(elsewhere.iterdir()) == []
    finally:
        connection._port_lock_dir.cache_clear()


def test_free_ports_fall_back_to_the_os_when_the_window_is_taken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every port of the window is in use: the OS picks instead, and the ports still work."""
    holders = []
    try:
        for _ in range(4):
            holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            holder.bind(("127.0.0.1", 0))
            holders.append(holder)
        taken = [h.getsockname()[1] for h in holders]
        monkeypatch.setattr(connection, "_port_window", lambda: taken)
        ports = find_free_ports(3)
        assert len(set(ports)) == 3
        assert not set(ports) & set(taken)
    finally:
        for holder in holders:
            holder.close()


def test_find_free_ports_zero_and_negative() -> None:
    assert find_free_ports(0) == []
    with pytest.raises(ValueError, match="negative"):
        find_free_ports(-1)


def test_find_free_ports_unknown_transport() -> None:
    with pytest.raises(ValueError, match="transport"):
        find_free_ports(1, transport="udp")


def test_find_free_ports_on_an_address_we_cannot_bind() -> None:
    # 192.0.2.0/24 is TEST-NET-1: never assigned to a local interface.
    with pytest.raises(ConnectionFileError, match=r"192\.0\.2\.1") as excinfo:
        find_free_ports(1, ip="192.0.2.1")
    assert isinstance(excinfo.value.__cause__, OSError)


def test_ipc_suffixes_skip_existing_files(tmp_path: Path) -> None:
    prefix = str(tmp_path / "kernel-ipc")
    for n in (1, 2, 4):
        Path(f"{prefix}-{n}").touch()
    assert find_free_ports(3, ip=prefix, transport="ipc") == [3, 5, 6]
    # Suffixes already handed out are not handed out again, even though no file exists yet.
    assert find_free_ports(2, ip=prefix, transport="ipc") == [7, 8]


def test_ipc_suffixes_start_at_one(tmp_path: Path) -> None:
    prefix = str(tmp_path / "fresh")
    assert find_free_ports(5, ip=prefix, transport="ipc") == [1, 2, 3, 4, 5]


# -- new() ---------------------------------------------------------------------------------------


def test_new_gives_distinct_free_ports_and_a_key() -> None:
    a = ConnectionInfo.new(kernel_name="python3")
    b = ConnectionInfo.new()
    assert len(set(a.ports.values())) == 5
    assert not set(a.ports.values()) & set(b.ports.values())
    assert a.key
    assert a.key != b.key
    assert a.kernel_name == "python3"
    assert (a.transport, a.ip, a.signature_scheme) == ("tcp", "127.0.0.1", "hmac-sha256")


def test_new_keeps_a_given_key_even_if_empty() -> None:
    assert ConnectionInfo.new(key="fixed").key == "fixed"
    assert ConnectionInfo.new(key="").key_bytes == b""


def test_new_ipc(tmp_path: Path) -> None:
    prefix = str(tmp_path / "k")
    Path(f"{prefix}-1").touch()
    info = ConnectionInfo.new(transport="ipc", ip=prefix)
    assert info.ports == {"shell": 2, "iopub": 3, "stdin": 4, "control": 5, "hb": 6}
    assert info.shell_url == f"ipc://{prefix}-2"


def test_new_rejects_a_bad_scheme_before_taking_ports() -> None:
    with pytest.raises(SignatureSchemeError):
        ConnectionInfo.new(signature_scheme="hmac-nosuch")


def test_new_then_write_then_read(tmp_path: Path) -> None:
    info = ConnectionInfo.new(kernel_name="k")
    info.write(tmp_path / "k.json")
    assert ConnectionInfo.from_file(tmp_path / "k.json") == info


def test_struct_is_frozen() -> None:
    info = sample()
    with pytest.raises(AttributeError):
        info.shell_port = 1  # type: ignore[misc]
    assert msgspec.structs.replace(info, shell_port=1).shell_port == 1


def test_importing_connection_does_not_import_zmq() -> None:
    import subprocess

    code = (
        "import sys, runtimelib.connection; "
        "print('zmq' in sys.modules, 'jupyter_core' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.split() == ["False", "False"]
