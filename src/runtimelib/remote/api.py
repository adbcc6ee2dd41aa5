"""The Jupyter Server REST API as data: which request does what, and what each answer means.

Sans-IO and shared by both server twins (server.py): a method there builds its request here,
sends it with its HTTP client, and hands the answer back here to be checked and decoded. The
rules of the API live in this module only:

- every request carries ``Authorization: token <t>`` (the gateways accept no other scheme)
  and never the token anywhere else: not in a URL, a log line or an error;
- a failed answer is the typed error ``errors.status_error`` gives for its status, with the
  server's own reason when it gave one;
- a kernel model is ``{id, name, last_activity, execution_state, connections}``; gateways
  leave out some fields, which then read as unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import msgspec

from ..errors import ServerError, ServerNotFoundError, status_error

__all__ = [
    "Call",
    "KernelModel",
    "KernelSpecModel",
    "KernelSpecsModel",
    "ServerUrl",
    "SessionModel",
    "check",
    "decode",
]


class KernelModel(msgspec.Struct, kw_only=True):
    """A kernel as the server describes it."""

    id: str
    name: str = ""
    last_activity: str | None = None
    #: "starting", "idle", "busy", "restarting", "dead"... ("" when the server does not say).
    execution_state: str = ""
    #: How many websockets are connected to it (-1 when the server does not say).
    connections: int = -1


class KernelSpecModel(msgspec.Struct, kw_only=True):
    """One kernelspec the server can start: its name, its kernel.json, its resources."""

    name: str
    spec: dict[str, Any] = {}
    resources: dict[str, str] = {}

    @property
    def display_name(self) -> str:
        return str(self.spec.get("display_name") or self.name)

    @property
    def language(self) -> str:
        return str(self.spec.get("language") or "")


class KernelSpecsModel(msgspec.Struct, kw_only=True):
    """The server's kernelspecs and which one it starts by default."""

    default: str | None = None
    kernelspecs: dict[str, KernelSpecModel] = {}


class SessionModel(msgspec.Struct, kw_only=True):
    """A session: a notebook (or console) path bound to a kernel."""

    id: str
    path: str = ""
    name: str = ""
    type: str = ""
    kernel: KernelModel | None = None


class ServerUrl:
    """A server's base URL (its path prefix kept, as JupyterHub serves one per user), and the
    URLs of its API below it."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) server URL: {url!r}")
        if parts.username or parts.password or parts.query:
            # A secret in a URL ends up in logs and error messages: the token goes in a header.
            raise ValueError("give the server URL without credentials or a query")
        self.base = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
        self.secure = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.secure else 80)
        self.netloc = parts.netloc
        self.prefix = parts.path.rstrip("/")

    def api(self, *path: str) -> str:
        """The URL of ``/api/<path...>`` (each piece quoted)."""
        return "/".join((self.base, "api", *(quote(p, safe="") for p in path)))

    def channels_target(self, kernel_id: str, session_id: str) -> str:
        """The request target of a kernel's websocket, for the handshake."""
        kernel = quote(kernel_id, safe="")
        return f"{self.prefix}/api/kernels/{kernel}/channels?session_id={quote(session_id)}"

    def __str__(self) -> str:
        return self.base


@dataclass(frozen=True)
class Call:
    """One request of the API: what it does (for errors), how to send it, what it answers."""

    what: str
    method: str
    url: str
    answer: Any = None
    body: dict[str, Any] | None = None
    #: Whether it waits for a kernel to start (the launch timeout applies, not the usual one).
    launches: bool = False

    def result(self, status: int, content: bytes) -> Any:
        """The decoded answer, or the typed error for a failed one."""
        check(status, content, self.what)
        return None if self.answer is None else decode(content, self.answer, self.what)


def kernelspecs(url: ServerUrl) -> Call:
    return Call("list kernelspecs", "GET", url.api("kernelspecs"), KernelSpecsModel)


def kernels(url: ServerUrl) -> Call:
    return Call("list kernels", "GET", url.api("kernels"), list[KernelModel])


def kernel(url: ServerUrl, kernel_id: str) -> Call:
    return Call(f"kernel {kernel_id}", "GET", url.api("kernels", kernel_id), KernelModel)


def start_kernel(
    url: ServerUrl, name: str | None, path: str | None, env: dict[str, str] | None
) -> Call:
    body = start_body(name, path, env)
    what = f"start kernel {name!r}" if name else "start the default kernel"
    return Call(what, "POST", url.api("kernels"), KernelModel, body, launches=True)


def may_be_unknown_kernelspec(name: str | None, error: ServerError) -> bool:
    """Whether a failed start may have named a kernelspec the server does not have: Jupyter
    Server answers that with a bare 500, so only the kernelspecs can tell."""
    return bool(name) and error.status >= 500


def unknown_kernelspec(
    url: ServerUrl, name: str | None, specs: KernelSpecsModel
) -> ServerNotFoundError | None:
    """The error for a start naming a kernelspec missing from ``specs`` (None if it is not)."""
    if not name or name in specs.kernelspecs:
        return None
    return ServerNotFoundError(f"no kernelspec named {name!r} on the server at {url}", status=404)


def interrupt_kernel(url: ServerUrl, kernel_id: str) -> Call:
    return Call(f"interrupt kernel {kernel_id}", "POST", url.api("kernels", kernel_id, "interrupt"))


def restart_kernel(url: ServerUrl, kernel_id: str) -> Call:
    what = f"restart kernel {kernel_id}"
    return Call(what, "POST", url.api("kernels", kernel_id, "restart"), KernelModel, launches=True)


def shutdown_kernel(url: ServerUrl, kernel_id: str) -> Call:
    return Call(f"shut down kernel {kernel_id}", "DELETE", url.api("kernels", kernel_id))


def sessions(url: ServerUrl) -> Call:
    return Call("list sessions", "GET", url.api("sessions"), list[SessionModel])


def headers(token: str | None) -> dict[str, str]:
    """The headers of every request: the token, in the one scheme every server accepts."""
    return {"Authorization": f"token {token}"} if token else {}


def check(status: int, body: bytes, what: str) -> None:
    """Raise the typed error for a failed answer to ``what`` ("start kernel 'python3'")."""
    error = status_error(status, body, what)
    if error is not None:
        raise error


def decode(body: bytes, type_: type[Any], what: str) -> Any:
    """The answer's JSON as ``type_``; a body of another shape is a ServerError."""
    try:
        return msgspec.json.decode(body, type=type_)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ServerError(f"{what}: the server's answer is not what the API says ({exc})") from exc


def start_body(name: str | None, path: str | None, env: dict[str, str] | None) -> dict[str, Any]:
    """The body that starts a kernel; gateways hand ``env``'s ``KERNEL_*`` to the kernel."""
    body: dict[str, Any] = {}
    if name:
        body["name"] = name
    if path is not None:
        body["path"] = path
    if env:
        body["env"] = dict(env)
    return body
