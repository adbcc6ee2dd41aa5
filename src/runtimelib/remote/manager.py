"""Kernels behind a Jupyter Server or gateway, with the local managers' surface:
AsyncRemoteKernelManager for asyncio and trio, RemoteKernelManager for blocking code.

A manager starts a kernel through the server's REST API (or attaches to a running one by id)
and makes clients that talk to it over websockets: the same AsyncKernelClient and
KernelClient as for local kernels, over a websocket transport. Each client has a session id of
its own, kept across reconnections, so the server replays to it what the kernel sent while it
was away. Liveness comes from the websocket (ping and pong) and the server's kernel model.
"""

from __future__ import annotations

import contextlib
import ssl
import weakref
from types import TracebackType
from typing import Any, TypeVar

import anyio

from ..client import AsyncKernelClient, KernelClient
from ..errors import KernelDiedError, ServerNotFoundError
from ..protocol import Session
from ..transports.websocket import (
    Endpoint,
    KernelState,
    WebsocketAsyncTransport,
    WebsocketTransport,
)
from .api import KernelModel
from .server import AsyncJupyterServer, JupyterServer, _ServerBase

__all__ = ["AsyncRemoteKernelManager", "RemoteKernelManager"]

M = TypeVar("M", bound="_RemoteBase")

#: Settings of the websocket transport a manager passes to its clients' transports.
TRANSPORT_SETTINGS = (
    "open_timeout",
    "reconnect_timeout",
    "ping_interval",
    "ping_timeout",
    "poll_interval",
)


class _RemoteBase:
    """What both managers hold: the server, the kernel's id and name, how clients connect."""

    server: _ServerBase

    def __init__(
        self,
        kernel_name: str | None,
        server_url: str,
        token: str | None = None,
        *,
        kernel_id: str | None = None,
        env: dict[str, str] | None = None,
        path: str | None = None,
        legacy: bool = False,
        timeout: float = 30.0,
        launch_timeout: float = 120.0,
        verify: bool | str = True,
        **transport: Any,
    ) -> None:
        unknown = sorted(transport.keys() - set(TRANSPORT_SETTINGS))
        if unknown:
            raise TypeError(f"unexpected option {unknown[0]!r}")
        self.kernel_name = kernel_name
        self.kernel_id = kernel_id
        self.env = env
        self.path = path
        #: Offer no subprotocol: talk the legacy websocket format.
        self.legacy = legacy
        self.transport_settings = transport
        self._server_options: dict[str, Any] = {
            "timeout": timeout,
            "launch_timeout": launch_timeout,
            "verify": verify,
        }
        self._url, self._token = server_url, token
        #: Whether this manager started the kernel (it then shuts it down on leaving).
        self.owns_kernel = False
        self.model: KernelModel | None = None
        self._clients: weakref.WeakSet[Any] = weakref.WeakSet()

    @classmethod
    def attach(
        cls: type[M], kernel_id: str, server_url: str, token: str | None = None, **options: Any
    ) -> M:
        """A manager of a kernel already running on the server (not shut down on leaving)."""
        return cls(None, server_url, token, kernel_id=kernel_id, **options)

    def _id(self) -> str:
        if self.kernel_id is None:
            raise RuntimeError("the kernel is not started")
        return self.kernel_id

    def _adopt(self, model: KernelModel, *, started: bool) -> None:
        self.model = model
        self.kernel_id = model.id
        self.kernel_name = model.name or self.kernel_name
        self.owns_kernel = self.owns_kernel or started

    def _endpoint(self, session: Session) -> Endpoint:
        if self.kernel_id is None:
            raise RuntimeError("start the kernel (or give a kernel_id) before making clients")
        url = self.server.url
        return Endpoint(
            host=url.host,
            port=url.port,
            target=url.channels_target(self.kernel_id, session.session_id),
            headers=self.server.headers,
            ssl_context=_ssl_context(self.server.verify) if url.secure else None,
            legacy=self.legacy,
        )

    @staticmethod
    def _state(model: KernelModel) -> KernelState:
        return KernelState(model.execution_state, model.connections)

    def _restarting(self) -> None:
        for client in list(self._clients):
            client.router.fail(KernelDiedError("the kernel was restarted"))

    def _restarted(self) -> None:
        for client in list(self._clients):
            client.router.recover()

    def __repr__(self) -> str:
        name, url = self.kernel_name, str(self.server.url)
        return f"{type(self).__name__}({name!r}, {url!r}, id={self.kernel_id!r})"


class AsyncRemoteKernelManager(_RemoteBase):
    """A kernel on a Jupyter Server, Kernel Gateway or Enterprise Gateway, for asyncio or
    trio; an async context manager that starts it (or attaches, given ``kernel_id``) and
    shuts down a kernel it started.

    ``env`` goes to the server with the start (gateways pass its ``KERNEL_*`` variables to
    the kernel); ``launch_timeout`` bounds a start or restart; ``legacy`` uses the websocket
    format of servers without the v1 subprotocol. Transport settings (``reconnect_timeout``,
    ``ping_interval``...) are passed to every client's websocket.
    """

    def __init__(
        self,
        kernel_name: str | None = None,
        server_url: str = "http://127.0.0.1:8888",
        token: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__(kernel_name, server_url, token, **options)
        self.server: AsyncJupyterServer = AsyncJupyterServer(
            self._url, self._token, **self._server_options
        )

    async def start(self) -> None:
        """Start the kernel on the server, or find the one named by ``kernel_id``."""
        if self.kernel_id is not None:
            self._adopt(await self.server.kernel(self.kernel_id), started=False)
        else:
            model = await self.server.start_kernel(self.kernel_name, path=self.path, env=self.env)
            self._adopt(model, started=True)

    async def is_alive(self) -> bool:
        """Whether the server still has the kernel, and does not call it dead."""
        if self.kernel_id is None:
            return False
        try:
            self.model = await self.server.kernel(self.kernel_id)
        except ServerNotFoundError:
            return False
        return self.model.execution_state != "dead"

    async def interrupt(self) -> None:
        await self.server.interrupt_kernel(self._id())

    async def restart(self) -> None:
        """Restart the kernel; requests pending in this manager's clients fail with
        KernelDiedError, and the clients wait for the new kernel before returning."""
        self._restarting()
        try:
            self._adopt(await self.server.restart_kernel(self._id()), started=False)
        finally:
            self._restarted()
        for client in list(self._clients):
            if client._task_group is not None:
                await client.wait_for_ready(self.server.launch_timeout)

    async def shutdown(self) -> None:
        """Shut the kernel down (a kernel already gone is not an error)."""
        if self.kernel_id is None:
            return
        with contextlib.suppress(ServerNotFoundError):
            await self.server.shutdown_kernel(self.kernel_id)
        self.owns_kernel = False

    def client(self, **kwargs: Any) -> AsyncKernelClient:
        """A new client of the kernel, over a websocket of its own."""
        session = Session()
        server = self.server

        async def probe() -> KernelState:
            return self._state(await server.kernel(self._id()))

        transport = WebsocketAsyncTransport(
            self._endpoint(session), session, probe=probe, **self.transport_settings
        )
        client = AsyncKernelClient(transport, **kwargs)
        self._clients.add(client)
        return client

    async def aclose(self) -> None:
        await self.server.aclose()

    async def __aenter__(self) -> AsyncRemoteKernelManager:
        try:
            await self.start()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self.owns_kernel:
                await self.shutdown()
        finally:
            await self.aclose()


class RemoteKernelManager(_RemoteBase):
    """The blocking twin of AsyncRemoteKernelManager; a context manager."""

    def __init__(
        self,
        kernel_name: str | None = None,
        server_url: str = "http://127.0.0.1:8888",
        token: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__(kernel_name, server_url, token, **options)
        self.server: JupyterServer = JupyterServer(self._url, self._token, **self._server_options)

    def start(self) -> None:
        """Start the kernel on the server, or find the one named by ``kernel_id``."""
        if self.kernel_id is not None:
            self._adopt(self.server.kernel(self.kernel_id), started=False)
        else:
            model = self.server.start_kernel(self.kernel_name, path=self.path, env=self.env)
            self._adopt(model, started=True)

    def is_alive(self) -> bool:
        """Whether the server still has the kernel, and does not call it dead."""
        if self.kernel_id is None:
            return False
        try:
            self.model = self.server.kernel(self.kernel_id)
        except ServerNotFoundError:
            return False
        return self.model.execution_state != "dead"

    def interrupt(self) -> None:
        self.server.interrupt_kernel(self._id())

    def restart(self) -> None:
        """Restart the kernel; requests pending in this manager's clients fail with
        KernelDiedError, and the clients wait for the new kernel before returning."""
        self._restarting()
        try:
            self._adopt(self.server.restart_kernel(self._id()), started=False)
        finally:
            self._restarted()
        for client in list(self._clients):
            if client._started:
                client.wait_for_ready(self.server.launch_timeout)

    def shutdown(self) -> None:
        """Shut the kernel down (a kernel already gone is not an error)."""
        if self.kernel_id is None:
            return
        with contextlib.suppress(ServerNotFoundError):
            self.server.shutdown_kernel(self.kernel_id)
        self.owns_kernel = False

    def client(self, **kwargs: Any) -> KernelClient:
        """A new client of the kernel, over a websocket of its own."""
        session = Session()
        server = self.server

        def probe() -> KernelState:
            return self._state(server.kernel(self._id()))

        transport = WebsocketTransport(
            self._endpoint(session), session, probe=probe, **self.transport_settings
        )
        client = KernelClient(transport, **kwargs)
        self._clients.add(client)
        return client

    def close(self) -> None:
        self.server.close()

    def __enter__(self) -> RemoteKernelManager:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self.owns_kernel:
                self.shutdown()
        finally:
            self.close()


def _ssl_context(verify: bool | str) -> ssl.SSLContext:
    """The TLS context of a wss websocket: as the REST client verifies (True, False, or a CA
    bundle's path)."""
    if isinstance(verify, str):
        return ssl.create_default_context(cafile=verify)
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
