"""Kernelspecs: reading kernel.json, finding installed kernels, installing and removing them."""

from __future__ import annotations

import logging
import os
import re
import shutil
import string
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from .errors import InvalidKernelNameError, KernelSpecError, NoSuchKernelError

__all__ = [
    "BrokenKernelSpec",
    "KernelSpec",
    "KernelSpecScan",
    "default_kernel_name",
    "find_kernelspec",
    "install_kernelspec",
    "kernel_dirs",
    "list_kernelspecs",
    "remove_kernelspec",
    "scan_kernelspecs",
]

logger = logging.getLogger(__name__)

# The rule every Jupyter tool applies to kernel names, after lowercasing the directory name.
_NAME_RE = re.compile(r"[a-z0-9._-]+")
_NAME_RULE = "a kernel name may only use a-z, 0-9, '.', '_' and '-', and is not '.' or '..'"

# The spec jupyter_client conjures from ipykernel when no "python3" kernelspec is installed.
_NATIVE_NAME = "python3"

_INTERRUPT_MODES = ("signal", "message")

# Only these placeholders are filled in argv; any other {word} reaches the kernel untouched,
# as it does with jupyter_client.
_PLACEHOLDERS = ("connection_file", "resource_dir", "prefix")
_PLACEHOLDER_RE = re.compile(r"\{(connection_file|resource_dir|prefix)\}")
_ANY_PLACEHOLDER_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
#: jupyter_client's provisioner for a plain local command: the same as no provisioner.
_LOCAL_PROVISIONER = "local-provisioner"

_LOGO_SIZE_RE = re.compile(r"logo-(\d+)x(\d+)\.png")


class _KernelJson(msgspec.Struct, frozen=True):
    """The content of a kernel.json file, as found on disk."""

    argv: list[str]
    # jupyter_client accepts a spec without these two and shows an empty string: so do we.
    display_name: str = ""
    language: str = ""
    env: dict[str, str] = msgspec.field(default_factory=dict)
    interrupt_mode: str = "signal"
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    kernel_protocol_version: str | None = None


_DECODER = msgspec.json.Decoder(_KernelJson)


def _is_valid_name(name: str) -> bool:
    """Whether ``name`` (already lowercased) may name a kernel."""
    # "." and ".." pass the pattern but name the kernels directory or its parent, which an
    # install with replace would delete.
    return _NAME_RE.fullmatch(name) is not None and name not in (".", "..")


def _normalize_name(name: str) -> str:
    """Lowercase ``name`` and check it is a valid kernel name, without touching the filesystem."""
    lowered = name.lower() if isinstance(name, str) else name
    # A name like "../x" or "a/b" must never be joined to a directory: reject it up front.
    if not isinstance(lowered, str) or not _is_valid_name(lowered):
        raise InvalidKernelNameError(f"invalid kernel name {name!r}: {_NAME_RULE}")
    return lowered


class KernelSpec(msgspec.Struct, kw_only=True, frozen=True):
    """An installed kernel: its name, resource directory and the content of its kernel.json."""

    #: The kernel's name, lowercase; the name of its directory for an installed spec.
    name: str
    #: The directory holding kernel.json and the kernel's logos and other resources.
    resource_dir: Path
    #: The command that starts the kernel, with ``{connection_file}`` and other placeholders.
    argv: list[str]
    #: The name shown to people, e.g. "Python 3 (ipykernel)".
    display_name: str = ""
    #: The language the kernel runs, e.g. "python".
    language: str = ""
    #: Extra environment variables for the kernel; values may refer to others as ``${VAR}``.
    env: dict[str, str] = msgspec.field(default_factory=dict)
    #: How to interrupt the kernel: "signal" (SIGINT) or "message" (an interrupt_request).
    interrupt_mode: str = "signal"
    #: Free-form metadata for clients, e.g. ``{"debugger": true}``.
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    #: The messaging protocol version the kernel speaks, if the spec says.
    kernel_protocol_version: str | None = None

    def __post_init__(self) -> None:
        # msgspec checks types only when decoding; direct construction is checked here.
        if _normalize_name(self.name) != self.name:
            raise KernelSpecError(f"kernel name {self.name!r} must be lowercase")
        if not self.argv or not all(isinstance(arg, str) for arg in self.argv):
            raise KernelSpecError(f"kernel {self.name!r}: argv must be a non-empty list of str")
        if self.interrupt_mode not in _INTERRUPT_MODES:
            raise KernelSpecError(
                f"kernel {self.name!r}: interrupt_mode must be 'signal' or 'message',"
                f" not {self.interrupt_mode!r}"
            )

    @classmethod
    def from_dir(cls, path: str | os.PathLike[str], name: str | None = None) -> KernelSpec:
        """Read ``<path>/kernel.json``; the name defaults to the directory's name, lowercased."""
        resource_dir = Path(os.path.abspath(path))
        spec_name = _normalize_name(resource_dir.name if name is None else name)
        kernel_file = resource_dir / "kernel.json"
        try:
            data = kernel_file.read_bytes()
        except FileNotFoundError as exc:
            raise KernelSpecError(f"{kernel_file}: no kernel.json in {resource_dir}") from exc
        except OSError as exc:
            raise KernelSpecError(f"{kernel_file}: cannot read kernelspec: {exc}") from exc
        # Editors on Windows like to start UTF-8 files with a byte order mark; JSON forbids it.
        data = data.removeprefix(b"\xef\xbb\xbf")
        try:
            content = _DECODER.decode(data)
        except msgspec.DecodeError as exc:
            raise KernelSpecError(f"{kernel_file}: invalid kernelspec: {exc}") from exc
        return cls._from_content(spec_name, resource_dir, content, where=str(kernel_file))

    @classmethod
    def _from_content(
        cls, name: str, resource_dir: Path, content: _KernelJson, *, where: str
    ) -> KernelSpec:
        """Build a spec from decoded kernel.json content, naming ``where`` in any error."""
        if not content.argv:
            raise KernelSpecError(f"{where}: invalid kernelspec: argv is empty")
        # jupyter_client compares the interrupt mode without regard to case.
        mode = content.interrupt_mode.lower()
        if mode not in _INTERRUPT_MODES:
            raise KernelSpecError(
                f"{where}: invalid kernelspec: interrupt_mode must be 'signal' or 'message',"
                f" not {content.interrupt_mode!r}"
            )
        return cls(
            name=name,
            resource_dir=resource_dir,
            argv=content.argv,
            display_name=content.display_name,
            language=content.language,
            env=content.env,
            interrupt_mode=mode,
            metadata=content.metadata,
            kernel_protocol_version=content.kernel_protocol_version,
        )

    def to_dict(self) -> dict[str, Any]:
        """The content of this spec's kernel.json, as a new dict."""
        data: dict[str, Any] = {
            "argv": list(self.argv),
            "env": dict(self.env),
            "display_name": self.display_name,
            "language": self.language,
            "interrupt_mode": self.interrupt_mode,
            "metadata": dict(self.metadata),
        }
        # Leave the key out rather than write null, which jupyter_client refuses to read.
        if self.kernel_protocol_version is not None:
            data["kernel_protocol_version"] = self.kernel_protocol_version
        return data

    @property
    def resources(self) -> dict[str, Path]:
        """The files beside kernel.json (logos, kernel.js) by file name, read on each access."""
        found: dict[str, Path] = {}
        try:
            with os.scandir(self.resource_dir) as entries:
                for entry in entries:
                    # Hidden files (.DS_Store, editor backups) are never kernel resources.
                    if entry.name == "kernel.json" or entry.name.startswith("."):
                        continue
                    if entry.is_file():
                        found[entry.name] = Path(entry.path)
        except OSError:
            return {}
        return dict(sorted(found.items()))

    @property
    def logo(self) -> Path | None:
        """The best logo among the resources: the SVG, else the largest ``logo-WxH.png``."""
        resources = self.resources
        if "logo-svg.svg" in resources:
            return resources["logo-svg.svg"]
        best: tuple[int, Path] | None = None
        for file_name, path in resources.items():
            match = _LOGO_SIZE_RE.fullmatch(file_name)
            if match:
                area = int(match.group(1)) * int(match.group(2))
                if best is None or area > best[0]:
                    best = (area, path)
        return None if best is None else best[1]

    @property
    def supports_registration(self) -> bool:
        """Whether the kernel binds ports of its own and reports them when given a
        registration file (the startup handshake, JEP 66): the spec says protocol 5.6 or
        later, or ``metadata.startup_handshake`` is true. Never on 5.5, which ipykernel
        claims without doing it."""
        if self.metadata.get("startup_handshake") is True:
            return True
        version = (self.kernel_protocol_version or "").split(".")
        try:
            return (int(version[0]), int(version[1])) >= (5, 6)
        except (IndexError, ValueError):
            return False

    @property
    def supports_curve(self) -> bool:
        """Whether the spec says its kernel speaks CurveZMQ (``metadata.supported_encryption``
        holds "curve"; a plain string is accepted, as jupyter_client accepts it)."""
        declared = self.metadata.get("supported_encryption")
        if isinstance(declared, str):
            declared = [declared]
        if not isinstance(declared, (list, tuple)):
            return False
        return any(isinstance(item, str) and item.strip().lower() == "curve" for item in declared)

    @property
    def provisioner(self) -> str | None:
        """The jupyter_client kernel provisioner that must start this kernel, if the spec
        names one other than jupyter_client's local one (which is a plain local launch)."""
        provisioner = self.metadata.get("kernel_provisioner")
        if isinstance(provisioner, dict):
            name = provisioner.get("provisioner_name")
            if isinstance(name, str) and name and name != _LOCAL_PROVISIONER:
                return name
        return None

    def gateway_problem(self) -> str | None:
        """Why no launcher here can start this spec, if it is an Enterprise Gateway spec (a
        ``process_proxy``): only a gateway can."""
        proxy = self.metadata.get("process_proxy")
        if isinstance(proxy, dict) and proxy.get("class_name"):
            return (
                f"kernelspec {self.name!r} is for Enterprise Gateway (process_proxy"
                f" {proxy['class_name']}): start it through a gateway"
            )
        return None

    def launch_problem(self) -> str | None:
        """Why this spec cannot be started as a local command, if it cannot: it is an
        Enterprise Gateway spec, it names a kernel provisioner (which must start it), or its
        command has placeholders only such launchers fill (``{response_address}``). None if
        it can."""
        if (problem := self.gateway_problem()) is not None:
            return problem
        where = f"kernelspec {self.name!r}"
        if self.provisioner is not None:
            return (
                f"{where} is launched by the kernel provisioner {self.provisioner!r}, not as a"
                " local command"
            )
        unknown = sorted({m for arg in self.argv for m in _ANY_PLACEHOLDER_RE.findall(arg)})
        unknown = [m for m in unknown if m not in _PLACEHOLDERS]
        if unknown:
            names = ", ".join("{" + m + "}" for m in unknown)
            return f"{where}: its command has placeholders runtimelib does not fill: {names}"
        return None

    def command(
        self,
        connection_file: str | os.PathLike[str],
        *,
        python: str | os.PathLike[str] | None = None,
    ) -> list[str]:
        """The argv to start this kernel with, its placeholders filled in.

        A first argument of ``python``, ``python3`` or ``python3.X`` (this interpreter's
        version) becomes ``python``, by default ``sys.executable``. The connection file is made
        absolute, since the kernel may be started in another working directory.
        """
        values = {
            "connection_file": os.path.abspath(connection_file),
            "resource_dir": str(self.resource_dir),
            "prefix": sys.prefix,
        }
        argv = list(self.argv)
        # Specs written by ipykernel say "python": they mean the interpreter that runs
        # Jupyter, which is not always the first python on PATH (an env used without
        # activating it). jupyter_client reads the major.minor form the same way.
        major, minor = sys.version_info[:2]
        if argv[0] in ("python", f"python{major}", f"python{major}.{minor}"):
            argv[0] = sys.executable if python is None else os.fspath(python)
        return [_PLACEHOLDER_RE.sub(lambda m: values[m.group(1)], arg) for arg in argv]

    def environment(
        self, base: Mapping[str, str] | None = None, extra: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """The kernel's environment: ``base`` (default os.environ), the spec's env, then ``extra``.

        ``${VAR}`` and ``$VAR`` in the spec's values are expanded from ``base``; unknown
        variables are left as written, and ``$$`` stands for a literal ``$``.
        """
        source = dict(os.environ if base is None else base)
        result = dict(source)
        if self.language.lower().startswith("python"):
            # Set by macOS framework builds for the parent; inherited, it makes the kernel's
            # sys.executable point at the wrong interpreter (jupyter_client drops it too).
            result.pop("PYTHONEXECUTABLE", None)
        for key, value in self.env.items():
            result[key] = string.Template(value).safe_substitute(source)
        if extra:
            result.update(extra)
        return result


class BrokenKernelSpec(msgspec.Struct, frozen=True):
    """A kernelspec directory that was found but cannot be used, and why."""

    #: The kernel name the directory would have (its name, lowercased).
    name: str
    #: The kernelspec directory.
    path: Path
    #: What is wrong with it.
    error: str


class KernelSpecScan(msgspec.Struct, frozen=True):
    """What a search of the kernel directories found: usable specs by name, and broken ones."""

    #: Usable kernelspecs by name, sorted by name.
    specs: dict[str, KernelSpec]
    #: Kernelspec directories that were found but could not be read, in search order.
    broken: list[BrokenKernelSpec]


def kernel_dirs() -> list[Path]:
    """The directories searched for kernelspecs, highest priority first."""
    # Imported here: jupyter_core (and platformdirs behind it) is not needed to read a spec.
    from jupyter_core.paths import jupyter_path

    return [Path(p) for p in jupyter_path("kernels")]


def _spec_dirs_in(kernels_dir: Path, only: str | None = None) -> dict[str, Path]:
    """Map lowercased names to the subdirectories of ``kernels_dir`` that hold a kernel.json.

    Unreadable or missing directories hold nothing. When two entries differ only by case, the
    all-lowercase one wins, then the first in sorted order, so the result never depends on the
    order the OS lists a directory in.
    """
    try:
        with os.scandir(kernels_dir) as entries:
            names = [entry.name for entry in entries]
    except OSError:
        return {}
    names.sort(key=lambda n: (n != n.lower(), n))
    found: dict[str, Path] = {}
    for entry_name in names:
        key = entry_name.lower()
        if key in found or (only is not None and key != only):
            continue
        path = kernels_dir / entry_name
        # os.path.isfile swallows every OSError: an unreadable entry is simply not a spec.
        if os.path.isfile(path / "kernel.json"):
            found[key] = path
    return found


def _locate(name: str) -> Path | None:
    """The directory of the installed spec called ``name`` (already normalized), if any."""
    for directory in kernel_dirs():
        path = _spec_dirs_in(directory, only=name).get(name)
        if path is not None:
            return path
    return None


def _native_spec() -> KernelSpec | None:
    """ipykernel's built-in spec, used as "python3" when none is installed; None without it."""
    try:
        # Imported only when needed: ipykernel pulls in jupyter_client and traitlets.
        from ipykernel.kernelspec import RESOURCES, get_kernel_dict
    except ImportError:
        return None
    where = "ipykernel's built-in kernelspec"
    # Ask ipykernel for its own launch command, as jupyter_client does, so both agree.
    try:
        content = msgspec.convert(get_kernel_dict(), _KernelJson)
    except msgspec.ValidationError as exc:
        raise KernelSpecError(f"{where}: invalid kernelspec: {exc}") from exc
    return KernelSpec._from_content(_NATIVE_NAME, Path(RESOURCES), content, where=where)


def _native_resources() -> Path:
    """ipykernel's resource directory; only called once ipykernel is known to import."""
    from ipykernel.kernelspec import RESOURCES

    return Path(RESOURCES)


def scan_kernelspecs() -> KernelSpecScan:
    """Read every installed kernelspec; a broken one is reported, never fatal to the others.

    The first directory in ``kernel_dirs()`` holding ``<name>/kernel.json`` wins, even when
    that file is broken: like jupyter_client, a broken spec shadows a valid one of the same
    name further down the path, so the scan reports what ``find_kernelspec`` would use.
    Directories whose name is not a valid kernel name are reported as broken.
    """
    specs: dict[str, KernelSpec] = {}
    broken: list[BrokenKernelSpec] = []
    seen: set[str] = set()
    for directory in kernel_dirs():
        for key, path in _spec_dirs_in(directory).items():
            if key in seen:
                continue
            seen.add(key)
            if not _is_valid_name(key):
                broken.append(BrokenKernelSpec(key, path, f"invalid kernel name: {_NAME_RULE}"))
                continue
            try:
                specs[key] = KernelSpec.from_dir(path, key)
            except KernelSpecError as exc:
                broken.append(BrokenKernelSpec(key, path, str(exc)))
    if _NATIVE_NAME not in seen:
        try:
            native = _native_spec()
        except KernelSpecError as exc:
            broken.append(BrokenKernelSpec(_NATIVE_NAME, _native_resources(), str(exc)))
        else:
            if native is not None:
                specs[_NATIVE_NAME] = native
    return KernelSpecScan(specs=dict(sorted(specs.items())), broken=broken)


def list_kernelspecs() -> list[KernelSpec]:
    """Every usable installed kernelspec, sorted by name; broken ones are logged as warnings."""
    scan = scan_kernelspecs()
    for bad in scan.broken:
        logger.warning("Ignoring kernelspec %r in %s: %s", bad.name, bad.path, bad.error)
    return list(scan.specs.values())


def find_kernelspec(name: str) -> KernelSpec:
    """The installed kernelspec called ``name`` (case-insensitive).

    Raises KernelSpecError for an invalid name or a broken spec, and NoSuchKernelError, which
    lists the available names, when none is installed.
    """
    key = _normalize_name(name)
    path = _locate(key)
    if path is not None:
        return KernelSpec.from_dir(path, key)
    if key == _NATIVE_NAME:
        native = _native_spec()
        if native is not None:
            return native
    available = ", ".join(scan_kernelspecs().specs) or "none"
    raise NoSuchKernelError(f"no kernelspec named {name!r}; available: {available}")


def default_kernel_name() -> str:
    """The kernel used when none is named: ``python3`` where it is installed (or ipykernel is
    importable), else the built-in ``runtimelib-python``, which needs nothing but runtimelib.
    """
    import importlib.util

    if _locate(_NATIVE_NAME) is not None or importlib.util.find_spec("ipykernel") is not None:
        return _NATIVE_NAME
    return "runtimelib-python"


def _install_root(user: bool, prefix: str | os.PathLike[str] | None, sys_prefix: bool) -> Path:
    """The ``share/jupyter``-like data directory an install goes to."""
    from jupyter_core import paths

    if sum((user, prefix is not None, sys_prefix)) > 1:
        raise ValueError("choose at most one of user, prefix and sys_prefix")
    if user:
        return Path(paths.jupyter_data_dir())
    if prefix is not None:
        return Path(os.path.abspath(prefix), "share", "jupyter")
    if sys_prefix:
        return Path(sys.prefix, "share", "jupyter")
    # Read from the module at call time, so a patched SYSTEM_JUPYTER_PATH is honoured.
    return Path(paths.SYSTEM_JUPYTER_PATH[0])


def install_kernelspec(
    source_dir: str | os.PathLike[str],
    *,
    name: str | None = None,
    user: bool = False,
    prefix: str | os.PathLike[str] | None = None,
    sys_prefix: bool = False,
    replace: bool = True,
) -> Path:
    """Copy a kernelspec folder into ``<data dir>/kernels/<name>`` and return that directory.

    The data directory is the user's with ``user``, ``<prefix>/share/jupyter`` with
    ``prefix``, ``<sys.prefix>/share/jupyter`` with ``sys_prefix``, else the first system
    directory, as jupyter_client does. The name defaults to the folder's name, lowercased.
    Raises KernelSpecError for an invalid folder or name, an existing spec when ``replace``
    is false, or a failed copy (e.g. no permission); ValueError for conflicting options.
    """
    source = Path(os.path.abspath(source_dir))
    kernel_name = _normalize_name(source.name if name is None else name)
    kernels_dir = _install_root(user, prefix, sys_prefix) / "kernels"
    destination = kernels_dir / kernel_name
    # Refuse a folder without a usable kernel.json before anything is touched.
    KernelSpec.from_dir(source, kernel_name)
    if source == destination:
        return destination
    if destination.is_relative_to(source):
        raise KernelSpecError(f"cannot install {source} into itself ({destination})")
    if kernels_dir not in kernel_dirs():
        logger.warning("Installing into %s, which Jupyter does not search for kernels", kernels_dir)
    try:
        if os.path.lexists(destination):
            if not replace:
                raise KernelSpecError(f"a kernelspec is already installed in {destination}")
            _remove_tree(destination)
        kernels_dir.mkdir(parents=True, exist_ok=True)
        shutil.copytree(source, destination)
    except OSError as exc:
        # Leave no half-copied spec behind: it would show up as a broken kernel.
        if os.path.isdir(destination) and not os.path.islink(destination):
            shutil.rmtree(destination, ignore_errors=True)
        raise KernelSpecError(f"cannot install kernelspec into {destination}: {exc}") from exc
    logger.info("Installed kernelspec %s in %s", kernel_name, destination)
    return destination


def _remove_tree(path: Path) -> None:
    """Delete a kernelspec directory; a symlinked spec loses the link, not its target."""
    if path.is_symlink() or not path.is_dir():
        path.unlink()
    else:
        shutil.rmtree(path)


def remove_kernelspec(name: str) -> Path:
    """Delete the installed kernelspec ``find_kernelspec(name)`` would use; return its directory.

    A broken spec can be removed too. ipykernel's built-in spec is not installed anywhere, so
    asking to remove it raises KernelSpecError.
    """
    key = _normalize_name(name)
    path = _locate(key)
    if path is None:
        if key == _NATIVE_NAME and _native_spec() is not None:
            raise KernelSpecError(
                f"{name!r} is ipykernel's built-in kernelspec, not an installed one"
            )
        available = ", ".join(scan_kernelspecs().specs) or "none"
        raise NoSuchKernelError(f"no kernelspec named {name!r}; available: {available}")
    try:
        _remove_tree(path)
    except OSError as exc:
        raise KernelSpecError(f"cannot remove kernelspec {path}: {exc}") from exc
    logger.info("Removed kernelspec %s from %s", key, path)
    return path
