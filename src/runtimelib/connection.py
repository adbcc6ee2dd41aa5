"""Kernel connection info: the connection file, its endpoints, and free ports for new kernels."""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import secrets
import socket
import stat
import threading
import time
import uuid
import warnings
from collections.abc import Mapping
from typing import Annotated, Any, Literal

try:
    import fcntl
except ImportError:  # Windows: the probe's bind is the only check
    fcntl = None  # type: ignore[assignment]

import msgspec

from .errors import ConnectionFileError, EncryptionError, SignatureSchemeError
from .protocol.signing import check_signature_scheme

__all__ = [
    "CHANNELS",
    "ConnectionFileWarning",
    "ConnectionInfo",
    "InsecureConnectionFileWarning",
    "curve_keypair",
    "find_free_ports",
    "zmq_endpoint",
]

#: The five channels of a kernel, in the order their ports are assigned by ``ConnectionInfo.new``.
CHANNELS: tuple[str, ...] = ("shell", "iopub", "stdin", "control", "hb")

# Aliases accepted by ``ConnectionInfo.endpoint`` for readability at call sites.
_CHANNEL_ALIASES = {"heartbeat": "hb"}

Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
Transport = Literal["tcp", "ipc"]

# How many sockets one call of find_free_ports may bind before it gives up: far more than the OS
# needs unless nearly every ephemeral port was already handed out by this process.
_MAX_EXTRA_BINDS = 1000


class InsecureConnectionFileWarning(UserWarning):
    """A connection file is readable or writable by other users, so its key is not secret."""


class ConnectionFileWarning(UserWarning):
    """A connection file could not be cleaned up (the kernel itself was stopped)."""


class ConnectionInfo(msgspec.Struct, kw_only=True, frozen=True):
    """What a client needs to reach a kernel: a Jupyter connection file, as a value."""

    transport: Transport = "tcp"
    ip: str = "127.0.0.1"
    shell_port: Port
    iopub_port: Port
    stdin_port: Port
    control_port: Port
    hb_port: Port
    key: str
    signature_scheme: str = "hmac-sha256"
    kernel_name: str = ""
    # jupyter_client spells these without the inner underscore in the file.
    curve_public_key: str | None = msgspec.field(default=None, name="curve_publickey")
    curve_secret_key: str | None = msgspec.field(default=None, name="curve_secretkey")
    #: Keys of the file this class does not model, written back unchanged.
    extra: dict[str, Any] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        # msgspec checks types and ranges only when decoding; direct construction is checked here.
        if self.transport not in ("tcp", "ipc"):
            raise ValueError(f"transport must be 'tcp' or 'ipc', not {self.transport!r}")
        for channel in CHANNELS:
            port = getattr(self, f"{channel}_port")
            if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
                raise ValueError(f"{channel}_port must be an int in 0..65535, not {port!r}")
        check_signature_scheme(self.signature_scheme)
        clash = _FILE_KEYS.intersection(self.extra)
        if clash:
            raise ValueError(f"extra must not contain modelled keys: {sorted(clash)}")

    def __repr__(self) -> str:
        # The key lets anyone who has it run code in the kernel: keep it out of logs.
        return (
            f"ConnectionInfo(transport={self.transport!r}, ip={self.ip!r}, ports={self.ports!r}, "
            f"key={'***' if self.key else ''!r}, signature_scheme={self.signature_scheme!r}, "
            f"kernel_name={self.kernel_name!r})"
        )

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def new(
        cls,
        *,
        ip: str | None = None,
        transport: Transport = "tcp",
        kernel_name: str = "",
        key: str | None = None,
        signature_scheme: str = "hmac-sha256",
        curve_keys: tuple[str, str] | None = None,
        free_ports: bool = True,
    ) -> ConnectionInfo:
        """Connection info for a kernel about to start: free ports and, unless given, a new key.

        ``curve_keys`` (public, secret; Z85) make the kernel a CurveZMQ server: every channel
        is encrypted (``curve_keypair()`` makes a pair). Without ``free_ports`` the ports are
        0: the kernel will bind its own and report them (``for_registration``)."""
        if ip is None:
            # For ipc the "ip" is a path prefix; jupyter_client's default prefix is this one.
            ip = "127.0.0.1" if transport == "tcp" else "kernel-ipc"
        check_signature_scheme(signature_scheme)
        if free_ports:
            ports = find_free_ports(len(CHANNELS), ip=ip, transport=transport)
        else:
            ports = [0] * len(CHANNELS)
        shell, iopub, stdin, control, hb = ports
        return cls(
            transport=transport,
            ip=ip,
            shell_port=shell,
            iopub_port=iopub,
            stdin_port=stdin,
            control_port=control,
            hb_port=hb,
            key=str(uuid.uuid4()) if key is None else key,
            signature_scheme=signature_scheme,
            kernel_name=kernel_name,
            curve_public_key=curve_keys[0] if curve_keys else None,
            curve_secret_key=curve_keys[1] if curve_keys else None,
        )

    # -- the startup handshake (JEP 66) ---------------------------------------------------------

    def for_registration(self, kernel_id: str, port: int) -> ConnectionInfo:
        """This info as a registration file: no ports (the kernel binds its own and reports
        them to ``port`` on this ip), and the kernel's id. The registration port is written
        as a string, as xeus-based kernels (the first to do the handshake) require."""
        extra = {**self.extra, "kernel_id": kernel_id, "registration_ip": self.ip}
        extra["registration_port"] = str(port)
        unbound = dict.fromkeys((f"{channel}_port" for channel in CHANNELS), 0)
        return msgspec.structs.replace(self, **unbound, extra=extra)

    @property
    def registration(self) -> tuple[str, str] | None:
        """For a registration file, the kernel's id and the endpoint to report its ports to;
        None for a connection file."""
        extra = self.extra
        if "registration_port" not in extra:
            return None
        host = str(extra.get("registration_ip") or self.ip)
        endpoint = zmq_endpoint(self.transport, host, extra["registration_port"])
        return str(extra.get("kernel_id", "")), endpoint

    def registered(self, ports: Mapping[str, int]) -> ConnectionInfo:
        """The connection info of a kernel that reported ``ports`` (registration keys gone)."""
        extra = {k: v for k, v in self.extra.items() if k not in _REGISTRATION_KEYS}
        bound = {f"{channel}_port": ports[channel] for channel in CHANNELS}
        return msgspec.structs.replace(self, **bound, extra=extra)

    @property
    def encrypted(self) -> bool:
        """Whether the kernel's channels are encrypted (CurveZMQ keys are given)."""
        return bool(self.curve_public_key)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConnectionInfo:
        """Connection info from the decoded JSON object of a connection file."""
        return cls._from_mapping(data, "connection info")

    @classmethod
    def from_json(cls, data: bytes | str) -> ConnectionInfo:
        """Connection info from the JSON text of a connection file."""
        return cls._from_bytes(data, "connection info")

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> ConnectionInfo:
        """Read a connection file; warn if other users can read it."""
        where = os.fspath(path)
        try:
            with open(where, "rb") as f:
                mode = os.fstat(f.fileno()).st_mode
                data = f.read()
        except OSError as exc:
            raise ConnectionFileError(f"{where}: cannot read connection file: {exc}") from exc
        # Only POSIX permission bits mean anything here; Windows reports them as 0o666.
        if os.name == "posix" and mode & 0o077:
            warnings.warn(
                f"{where}: connection file is accessible to other users (mode "
                f"{mode & 0o777:04o}); anyone who can read it can run code in the kernel",
                InsecureConnectionFileWarning,
                stacklevel=2,
            )
        return cls._from_bytes(data, where)

    @classmethod
    def _from_bytes(cls, data: bytes | str, where: str) -> ConnectionInfo:
        try:
            decoded = _OBJECT_DECODER.decode(data)
        except (msgspec.DecodeError, UnicodeError) as exc:
            raise ConnectionFileError(f"{where}: not a JSON object: {exc}") from exc
        return cls._from_mapping(decoded, where)

    @classmethod
    def _from_mapping(cls, data: Mapping[str, Any], where: str) -> ConnectionInfo:
        known = {k: v for k, v in data.items() if k in _FILE_KEYS}
        if "registration_port" in data:  # a registration file has no ports
            known = {**dict.fromkeys((f"{c}_port" for c in CHANNELS), 0), **known}
        extra = {k: v for k, v in data.items() if k not in _FILE_KEYS}
        # The Rust crates write an absent kernel name as null; read it as "no name".
        if "kernel_name" in known and known["kernel_name"] is None:
            del known["kernel_name"]
        try:
            return msgspec.convert({**known, "extra": extra}, cls)
        except msgspec.ValidationError as exc:
            if isinstance(exc.__cause__, SignatureSchemeError):
                raise ConnectionFileError(f"{where}: {exc.__cause__}") from exc.__cause__
            raise ConnectionFileError(f"{where}: invalid connection info: {exc}") from exc

    # -- serialization --------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of the connection file, unknown keys read from a file included."""
        out: dict[str, Any] = msgspec.to_builtins(self)
        del out["extra"]
        # jupyter_client leaves the curve keys out unless CurveZMQ is on; so do we.
        for name in ("curve_publickey", "curve_secretkey"):
            if out[name] is None:
                del out[name]
        out.update(self.extra)
        if "registration_port" in out:
            for channel in CHANNELS:
                if out.get(f"{channel}_port") == 0:
                    del out[f"{channel}_port"]
        return out

    def to_json(self) -> bytes:
        """The connection file's content, as UTF-8 JSON."""
        try:
            return msgspec.json.encode(self.to_dict())
        except (msgspec.EncodeError, TypeError, ValueError) as exc:
            raise ConnectionFileError(f"connection info cannot be encoded: {exc}") from exc

    def write(self, path: str | os.PathLike[str]) -> None:
        """Write the file atomically with mode 0600, replacing (never following) a symlink."""
        where = os.fspath(path)
        # Indented like jupyter_client's files: people open them to debug a kernel.
        data = msgspec.json.format(self.to_json(), indent=2) + b"\n"
        directory, name = os.path.split(os.path.abspath(where))
        # A name no one can predict, created exclusively and without following links, so a
        # planted file or symlink cannot redirect or expose the key before the rename.
        tmp = os.path.join(directory, f".{name}.{secrets.token_hex(8)}.tmp")
        flags = (
            os.O_WRONLY
            | os.O_CREAT
            | os.O_EXCL
            | getattr(os, "O_NOFOLLOW", 0)
            | getattr(os, "O_CLOEXEC", 0)
            | getattr(os, "O_BINARY", 0)
        )
        try:
            fd = os.open(tmp, flags, 0o600)
        except OSError as exc:
            raise ConnectionFileError(f"{where}: cannot write connection file: {exc}") from exc
        try:
            try:
                if hasattr(os, "fchmod"):
                    # The mode given to open() is masked by the umask; this pins it exactly.
                    os.fchmod(fd, 0o600)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            # No fsync: the file only matters while this boot's kernel runs; what matters is
            # that a reader never sees it half written, which the rename guarantees.
            # os.replace swaps the directory entry, so a symlink at the target is replaced
            # itself and the file it pointed to is left alone.
            os.replace(tmp, where)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise ConnectionFileError(f"{where}: cannot write connection file: {exc}") from exc

    # -- endpoints ------------------------------------------------------------------------------

    @property
    def key_bytes(self) -> bytes:
        """The HMAC key as bytes; empty means messages are not signed."""
        return self.key.encode("utf-8")

    @property
    def ports(self) -> dict[str, int]:
        """Each channel's port (for ipc, its path suffix)."""
        return {channel: getattr(self, f"{channel}_port") for channel in CHANNELS}

    def endpoint(self, channel: str) -> str:
        """The ZeroMQ endpoint of a channel: shell, iopub, stdin, control, hb (or heartbeat)."""
        name = _CHANNEL_ALIASES.get(channel, channel)
        if name not in CHANNELS:
            raise ValueError(f"unknown channel {channel!r}; expected one of {', '.join(CHANNELS)}")
        return zmq_endpoint(self.transport, self.ip, getattr(self, f"{name}_port"))

    @property
    def shell_url(self) -> str:
        """The shell channel's endpoint."""
        return self.endpoint("shell")

    @property
    def iopub_url(self) -> str:
        """The iopub channel's endpoint."""
        return self.endpoint("iopub")

    @property
    def stdin_url(self) -> str:
        """The stdin channel's endpoint."""
        return self.endpoint("stdin")

    @property
    def control_url(self) -> str:
        """The control channel's endpoint."""
        return self.endpoint("control")

    @property
    def hb_url(self) -> str:
        """The heartbeat channel's endpoint."""
        return self.endpoint("hb")


def zmq_endpoint(transport: str, ip: str, port: int | str) -> str:
    """The ZeroMQ endpoint of ``port`` at ``ip`` (an IPv6 address gets its brackets)."""
    if transport == "ipc":
        # jupyter's convention: the ip is a path prefix and the port a numeric suffix.
        return f"ipc://{ip}-{port}"
    host = f"[{ip}]" if ":" in ip and not ip.startswith("[") else ip
    return f"tcp://{host}:{port}"


_OBJECT_DECODER = msgspec.json.Decoder(dict[str, Any])
# What a registration file has that a connection file does not.
_REGISTRATION_KEYS = frozenset({"kernel_id", "registration_ip", "registration_port"})

# The keys of a connection file that ConnectionInfo models (``extra`` holds the others).
_FILE_KEYS = frozenset(
    f.encode_name for f in msgspec.structs.fields(ConnectionInfo) if f.name != "extra"
)


# -- free ports ---------------------------------------------------------------------------------

# Ports (tcp) and paths (ipc) already handed out by this process. The OS happily returns a port
# again once its probe socket is closed, and two kernels started back to back must not both get
# it before either has bound it.
_handed_out_lock = threading.Lock()
_handed_out_tcp: set[int] = set()
_handed_out_ipc: set[str] = set()

#: How long a port handed out stays reserved against other processes: time enough for the
#: kernel to bind it, after which no probe can.
_RESERVED_FOR = 120.0
# Reservations held by this process: port -> (locked file, when), under _handed_out_lock.
_reservations: dict[int, tuple[int, float]] = {}

#: How many ports below the ephemeral range kernel ports are drawn from.
_PORT_WINDOW = 16384
#: Draws in that window before falling back to ports the OS picks.
_WINDOW_TRIES = 64


def _port_window() -> range | None:
    """Ports for kernels to bind that no outgoing connection can be holding.

    A port the OS hands out for ``bind(0)`` comes from the ephemeral range, the one it also
    gives every outgoing connection. Between our probe and the kernel's bind, a connection
    (a client retrying every few milliseconds against another kernel that is still starting,
    say) can take it, and the kernel fails with "Address already in use": seen here with ten
    kernels starting at once. So on Linux ports come from just below that range.
    """
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", "rb") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    start = max(1024, low - _PORT_WINDOW)
    return range(start, low) if low - start >= 1024 else None


def curve_keypair() -> tuple[str, str]:
    """A new CurveZMQ key pair (public, secret), Z85-encoded as connection files hold them.

    Raises EncryptionError when this libzmq was built without CURVE."""
    import zmq

    if not zmq.has("curve"):
        raise EncryptionError(
            "this libzmq has no CurveZMQ support: install a pyzmq built with libsodium"
        )
    public, secret = zmq.curve_keypair()
    return public.decode("ascii"), secret.decode("ascii")


def find_free_ports(count: int, *, ip: str = "127.0.0.1", transport: str = "tcp") -> list[int]:
    """``count`` distinct ports (ipc: path suffixes) that are free now and new to this process."""
    if count < 0:
        raise ValueError(f"count must not be negative, not {count}")
    if transport == "tcp":
        return _free_tcp_ports(count, ip)
    if transport == "ipc":
        return _free_ipc_suffixes(count, ip)
    raise ValueError(f"transport must be 'tcp' or 'ipc', not {transport!r}")


def _free_tcp_ports(count: int, ip: str) -> list[int]:
    host = ip[1:-1] if ip.startswith("[") and ip.endswith("]") else ip
    if host == "*":
        host = ""  # zmq's "all interfaces"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    probes: list[socket.socket] = []
    ports: list[int] = []
    window = _port_window()
    with _handed_out_lock:
        try:
            # Every probe stays bound until the end, so the OS cannot return one port twice
            # within this call, and a port we reject is not offered again either.
            while len(ports) < count:
                if len(probes) >= count + _MAX_EXTRA_BINDS:
                    raise ConnectionFileError(
                        f"no free {ip} port left that this process has not already handed out "
                        f"({len(_handed_out_tcp)} handed out so far)"
                    )
                probe = socket.socket(family, socket.SOCK_STREAM)
                probes.append(probe)
                port = _bind_probe(probe, host, window)
                if port is None:
                    window = None  # the window is crowded: let the OS choose
                    continue
                if port not in _handed_out_tcp and _reserve(port):
                    ports.append(port)
        except OSError as exc:
            raise ConnectionFileError(f"cannot find a free port on {ip!r}: {exc}") from exc
        finally:
            for probe in probes:
                probe.close()
        _handed_out_tcp.update(ports)
    return ports


def _reserve(port: int) -> bool:
    """Whether ``port`` is now reserved for this process against every other process on this
    machine that draws kernel ports here, through an advisory lock on a file named after it.

    Another process (a parallel notebook run, a test worker) drawing from the same window can
    probe the same port before either kernel has bound it; one kernel then fails with "Address
    already in use", and a client that reached the other kernel meanwhile talks to the wrong
    one. Where locks cannot be had, the probe's bind is the only check, as it was.
    """
    now = time.monotonic()
    for held, (fd, when) in list(_reservations.items()):
        if now - when > _RESERVED_FOR:
            del _reservations[held]
            os.close(fd)
    directory = _port_lock_dir()
    if directory is None:
        return True
    try:
        fd = os.open(os.path.join(directory, str(port)), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False  # another process holds it
    _reservations[port] = (fd, now)
    return True


@functools.cache
def _port_lock_dir() -> str | None:
    """The directory of the port locks (one per user, private to it), or None."""
    if fcntl is None or not hasattr(os, "getuid"):
        return None
    import tempfile

    path = os.path.join(tempfile.gettempdir(), f"runtimelib-ports-{os.getuid()}")
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        status = os.lstat(path)
    except OSError:
        return None
    if not (stat.S_ISDIR(status.st_mode) and status.st_uid == os.getuid()):
        return None  # not ours (someone else made it, or a link)
    return path


def _bind_probe(probe: socket.socket, host: str, window: range | None) -> int | None:
    """Bind ``probe`` to a free port, in ``window`` if given; None if the window seems full."""
    if window is None:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port
    for _ in range(_WINDOW_TRIES):
        port = secrets.choice(window)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                continue
            raise
        return port
    return None


def _free_ipc_suffixes(count: int, ip: str) -> list[int]:
    suffixes: list[int] = []
    n = 1
    with _handed_out_lock:
        while len(suffixes) < count:
            path = f"{ip}-{n}"
            if path not in _handed_out_ipc and not os.path.lexists(path):
                suffixes.append(n)
                _handed_out_ipc.add(path)
            n += 1
    return suffixes
