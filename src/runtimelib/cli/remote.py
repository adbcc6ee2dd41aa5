"""``--server URL``: the commands on the kernels of a Jupyter Server or Kernel Gateway.

Imported only when a command is given ``--server``, since runtimelib.remote brings httpx.
Everything goes through the server's REST API and its kernel websockets: nothing is
started, restarted or signalled on this machine. A kernel a command starts for itself
(``run``, ``console``, ``execute``) is shut down when the command ends, on an error or Ctrl-C
too; one it was pointed at (``exec``, ``--existing``) keeps running.

The token (``--token``, else ``JUPYTER_TOKEN``) travels only in the requests' Authorization
header; no message here names it (and dispatch scrubs it from any message that would).
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from .. import errors
from . import EXIT_INTERRUPTED, EXIT_KERNEL, EXIT_OK, UsageError, server_token

try:
    from ..remote import JupyterServer, KernelModel, RemoteKernelManager
except ImportError as exc:  # without the 'remote' extra: its message says what to install
    raise UsageError(f"--server: {exc}") from exc
from .commands import _execute_on, _read_code, _table
from .ctrlc import CtrlC
from .term import Terminal, emit_json

__all__ = ["COMMANDS", "kernel_factory", "remote_kernel"]

# Colours of a kernel's execution_state in the ps table.
_STATE_STYLES = {"idle": "32", "busy": "33", "starting": "33", "restarting": "33", "dead": "31"}


def _refuse_local_options(args: argparse.Namespace) -> None:
    """Options that only mean something for a kernel on this machine."""
    if getattr(args, "cwd", None) is not None:
        raise UsageError("--cwd is a folder on this machine; a server's kernel runs in its own")
    if getattr(args, "transport_encryption", None) is not None:
        raise UsageError("--encryption is for kernels on this machine, not with --server")


def _server(args: argparse.Namespace, **options: Any) -> JupyterServer:
    try:
        return JupyterServer(args.server, server_token(args), **options)
    except ValueError as exc:  # a URL that is not one
        raise UsageError(str(exc)) from exc


def _list(server: JupyterServer) -> list[KernelModel] | None:
    """The server's kernels, or None for a server that takes the token but lists no kernels
    (Kernel Gateway answers 403 unless started with KG_LIST_KERNELS)."""
    try:
        return server.kernels()
    except errors.ServerAuthError as exc:
        if exc.status != 403:
            raise
        # Both a wrong token and a gateway that does not list are a 403: a request every
        # server answers for a good token tells them apart.
        server.kernelspecs()
        return None


def _kernels_listed(server: JupyterServer) -> list[KernelModel]:
    found = _list(server)
    if found is None:
        raise errors.ServerError(
            f"the server at {server.url} does not list its kernels"
            " (a Kernel Gateway does only when started with KG_LIST_KERNELS=1)",
            status=403,
        )
    return found


def _resolve(server: JupyterServer, text: str) -> str:
    """The id of the server's kernel named by ``text``: its id, or a unique prefix of it
    (where the server lists its kernels)."""
    try:
        return server.kernel(text).id
    except errors.ServerNotFoundError:
        found = _list(server) or []
    matches = [model.id for model in found if model.id.startswith(text)]
    if len(matches) == 1:
        return matches[0]
    several = f" ({len(matches)} kernels' ids start with it)" if matches else ""
    raise errors.ServerNotFoundError(
        f"no running kernel {text!r} on the server at {server.url}{several}", status=404
    )


@contextlib.contextmanager
def remote_kernel(
    args: argparse.Namespace, name: str | None, existing: str | None = None, **options: Any
) -> Iterator[RemoteKernelManager]:
    """The server's kernel a command runs on: the running one named by ``existing`` (left
    running), else a new ``name`` kernel (the server's default for None), shut down on
    leaving whatever happened."""
    _refuse_local_options(args)
    token = server_token(args)
    try:
        if existing is not None:
            with _server(args) as server:
                kernel_id = _resolve(server, existing)
            km = RemoteKernelManager.attach(kernel_id, args.server, token, **options)
        else:
            km = RemoteKernelManager(name, args.server, token, **options)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    try:
        km.start()
        yield km
    finally:
        try:
            if km.owns_kernel:
                km.shutdown()
        finally:
            km.close()


def kernel_factory(
    args: argparse.Namespace, **options: Any
) -> Callable[[str | None], contextlib.AbstractContextManager[RemoteKernelManager]]:
    """What ``execute_notebook`` makes its kernel with: a new kernel on the server, named by
    the notebook when ``-k`` does not name one (the server's default when neither does)."""
    _refuse_local_options(args)

    def make(name: str | None) -> contextlib.AbstractContextManager[RemoteKernelManager]:
        return remote_kernel(args, name, **options)

    return make


# -- the commands ------------------------------------------------------------------------------


def _kernels(args: argparse.Namespace) -> int:
    if args.kernels_action is not None:
        raise UsageError(f"`kernels {args.kernels_action}` is for this machine, not a server")
    with _server(args) as server:
        found = server.kernelspecs()
    specs = sorted(found.kernelspecs.values(), key=lambda spec: spec.name)
    if args.json:
        emit_json(
            [
                {
                    "name": s.name,
                    "display_name": s.display_name,
                    "language": s.language,
                    "path": None,  # the spec's folder is on the server, not here
                    "argv": list(s.spec.get("argv") or []),
                    "default": s.name == found.default,
                }
                for s in specs
            ]
        )
    elif args.quiet:
        for spec in specs:
            print(spec.name)
    else:
        terminal = Terminal()
        rows = [[s.name, s.language, s.display_name] for s in specs]
        _table(rows, ["NAME", "LANGUAGE", "DISPLAY NAME"], terminal)
        if found.default:
            terminal.note(f"the server starts {found.default} unless told otherwise")
    return EXIT_OK


def _ps(args: argparse.Namespace) -> int:
    with _server(args) as server:
        found = _kernels_listed(server)
    if args.json:
        emit_json(
            [
                {
                    "id": k.id,
                    "kernel_name": k.name,
                    "execution_state": k.execution_state or None,
                    "connections": k.connections if k.connections >= 0 else None,
                    "last_activity": k.last_activity,
                }
                for k in found
            ]
        )
    elif args.quiet:
        for kernel in found:
            print(kernel.id)
    else:
        terminal = Terminal()
        rows = [
            [
                k.id,
                k.name or "?",
                terminal.style(k.execution_state or "?", _STATE_STYLES.get(k.execution_state, "0")),
                str(k.connections) if k.connections >= 0 else "?",
                k.last_activity or "-",
            ]
            for k in found
        ]
        _table(rows, ["ID", "KERNEL", "STATE", "CONNECTIONS", "LAST ACTIVITY"], terminal)
    return EXIT_OK


def _start_command(args: argparse.Namespace) -> int:
    _refuse_local_options(args)
    with _server(args) as server:
        model = server.start_kernel(args.kernel)
    if args.json:
        emit_json(
            {
                "id": model.id,
                "kernel_name": model.name,
                "execution_state": model.execution_state or None,
                "server": str(server.url),
            }
        )
    else:
        print(model.id)
        Terminal().note(f"{model.name or 'the'} kernel running on {server.url}")
    return EXIT_OK


def _stop(args: argparse.Namespace) -> int:
    terminal = Terminal()
    results: list[dict[str, Any]] = []
    with _server(args, timeout=args.timeout) as server:
        if args.all:
            targets = [model.id for model in _kernels_listed(server)]
        else:
            targets = [_resolve(server, args.kernel_id)]
        for target in targets:
            try:
                server.shutdown_kernel(target)
            except errors.ServerNotFoundError:
                pass  # gone meanwhile (stop --all): what was asked is done
            except errors.ServerError as exc:
                if not args.all:
                    raise
                results.append({"id": target, "stopped": False, "error": str(exc)})
                if not args.json:
                    terminal.error_line(f"runtimelib: {exc}")
                continue
            results.append({"id": target, "stopped": True})
            if not args.json:
                print(f"stopped {target}")
    if args.json:
        emit_json(results)
    return EXIT_OK if all(r["stopped"] for r in results) else EXIT_KERNEL


def _interrupt(args: argparse.Namespace) -> int:
    with _server(args, timeout=args.timeout) as server:
        kernel_id = _resolve(server, args.kernel_id)
        server.interrupt_kernel(kernel_id)
    print(f"interrupted {kernel_id}")
    return EXIT_OK


def _restart(args: argparse.Namespace) -> int:
    # The server restarts it: nothing is started here, whatever the kernel is.
    with _server(args, timeout=args.timeout, launch_timeout=args.timeout) as server:
        kernel_id = _resolve(server, args.kernel_id)
        server.restart_kernel(kernel_id)
    print(f"restarted {kernel_id}")
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    code = _read_code(args)
    terminal = Terminal()
    with remote_kernel(args, getattr(args, "kernel", None), args.existing) as km:
        then = "stop it" if km.owns_kernel else "stop waiting"
        with km.client() as kc:
            try:
                return _execute_on(kc, code, args, CtrlC(km.interrupt, terminal, then=then))
            except KeyboardInterrupt:
                # A kernel started for this run is shut down on leaving; another is left be.
                return EXIT_INTERRUPTED


#: What each subcommand runs with ``--server`` (``console`` and ``execute`` ask
#: ``remote_kernel`` and ``kernel_factory`` for their kernel where they live).
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "kernels": _kernels,
    "ps": _ps,
    "start": _start_command,
    "stop": _stop,
    "interrupt": _interrupt,
    "restart": _restart,
    "run": _run,
    "exec": _run,
}
