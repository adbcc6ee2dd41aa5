"""Kernels behind a Jupyter Server, Kernel Gateway or Enterprise Gateway (the ``remote``
extra: ``pip install runtimelib[remote]``).

- ``AsyncRemoteKernelManager`` / ``RemoteKernelManager``: start (or attach to) a kernel on a
  server and make the usual clients for it, over websockets;
- ``AsyncJupyterServer`` / ``JupyterServer``: the server's REST API (kernelspecs, kernels,
  sessions);
- ``api``: that API as data, without I/O.
"""

from __future__ import annotations

try:
    import httpx  # noqa: F401
    import wsproto  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on what is installed
    raise ImportError(
        f"remote kernels need the 'remote' extra ({exc.name} is missing):"
        " pip install 'runtimelib[remote]'"
    ) from exc

from .api import KernelModel, KernelSpecModel, KernelSpecsModel, SessionModel
from .manager import AsyncRemoteKernelManager, RemoteKernelManager
from .server import AsyncJupyterServer, JupyterServer

__all__ = [
    "AsyncJupyterServer",
    "AsyncRemoteKernelManager",
    "JupyterServer",
    "KernelModel",
    "KernelSpecModel",
    "KernelSpecsModel",
    "RemoteKernelManager",
    "SessionModel",
]
