"""A Jupyter Server (or Kernel Gateway, or Enterprise Gateway) as Python objects:
AsyncJupyterServer for asyncio and trio, JupyterServer for blocking code.

Both twins send the requests api.py describes with httpx (its async and its blocking client)
and check the answers there; nothing else differs between them. A launch waits up to
``launch_timeout`` (gateways starting kernels on a cluster take tens of seconds); every other
request up to ``timeout``.

A launch is never abandoned half way, since the kernel it asked for would run on unowned:
interrupted (KeyboardInterrupt in blocking code, a cancellation in async code) while the
server starts the kernel, ``start_kernel`` still waits for the server's answer, shuts that
kernel down, and then lets the interruption go on. A second KeyboardInterrupt stops waiting.
"""

from __future__ import annotations

import contextlib
import threading
from types import TracebackType
from typing import Any

import anyio
import httpx

from ..errors import KernelTimeoutError, RuntimelibError, ServerError, ServerUnavailableError
from . import api
from .api import Call, KernelModel, KernelSpecsModel, ServerUrl, SessionModel

__all__ = ["AsyncJupyterServer", "JupyterServer"]


class _ServerBase:
    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        launch_timeout: float = 120.0,
        verify: bool | str = True,
    ) -> None:
        self.url = ServerUrl(url)
        self.token = token
        self.timeout = timeout
        self.launch_timeout = launch_timeout
        self.verify = verify

    @property
    def headers(self) -> dict[str, str]:
        """What every request (and the websocket's handshake) carries."""
        return api.headers(self.token)

    def _timeout(self, call: Call) -> float:
        # The HTTP timeout follows the launch timeout, so a slow launch is not cut short.
        return self.launch_timeout if call.launches else self.timeout

    def _unreachable(self, call: Call, exc: httpx.HTTPError) -> RuntimelibError:
        if isinstance(exc, httpx.TimeoutException):
            limit = self._timeout(call)
            if call.launches:
                return KernelTimeoutError(f"{call.what}: not done in {limit:g} s (launch_timeout)")
            why = f"no answer in {limit:g} s"
        else:
            why = f"cannot reach the server at {self.url}: {type(exc).__name__}"
            if str(exc):
                why += f" ({exc})"
        return ServerUnavailableError(f"{call.what}: {why}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.url)!r})"


class AsyncJupyterServer(_ServerBase):
    """A Jupyter Server's REST API for asyncio or trio; an async context manager."""

    def __init__(self, url: str, token: str | None = None, **options: Any) -> None:
        super().__init__(url, token, **options)
        self._http = httpx.AsyncClient(headers=self.headers, verify=self.verify)

    async def _call(self, call: Call) -> Any:
        try:
            response = await self._http.request(
                call.method, call.url, json=call.body, timeout=self._timeout(call)
            )
        except httpx.HTTPError as exc:
            raise self._unreachable(call, exc) from None
        return call.result(response.status_code, response.content)

    async def kernelspecs(self) -> KernelSpecsModel:
        """The kernelspecs the server can start."""
        return await self._call(api.kernelspecs(self.url))  # type: ignore[no-any-return]

    async def kernels(self) -> list[KernelModel]:
        """The kernels running on the server."""
        return await self._call(api.kernels(self.url))  # type: ignore[no-any-return]

    async def kernel(self, kernel_id: str) -> KernelModel:
        """One kernel's model (ServerNotFoundError when there is none)."""
        return await self._call(api.kernel(self.url, kernel_id))  # type: ignore[no-any-return]

    async def start_kernel(
        self,
        name: str | None = None,
        *,
        path: str | None = None,
        env: dict[str, str] | None = None,
    ) -> KernelModel:
        """Start a kernel (the server's default when ``name`` is None); a kernelspec the
        server does not have is ServerNotFoundError."""
        try:
            return await self._launch(api.start_kernel(self.url, name, path, env))
        except ServerUnavailableError as exc:
            if not api.may_be_unknown_kernelspec(name, exc):
                raise
            try:
                specs = await self.kernelspecs()
            except ServerError:
                raise exc from None  # the first error says more
            raise api.unknown_kernelspec(self.url, name, specs) or exc from None

    async def _launch(self, call: Call) -> KernelModel:
        with anyio.CancelScope(shield=True):  # from the cancel scopes of anyio and trio
            model, interruption = await _answer_despite_asyncio_cancel(self._call(call))
        if interruption is None:
            try:
                await anyio.lowlevel.checkpoint_if_cancelled()
                return model
            except anyio.get_cancelled_exc_class() as exc:
                interruption = exc
        with anyio.CancelScope(shield=True), contextlib.suppress(RuntimelibError):
            await self.shutdown_kernel(model.id)
        raise interruption

    async def interrupt_kernel(self, kernel_id: str) -> None:
        await self._call(api.interrupt_kernel(self.url, kernel_id))

    async def restart_kernel(self, kernel_id: str) -> KernelModel:
        return await self._call(api.restart_kernel(self.url, kernel_id))  # type: ignore[no-any-return]

    async def shutdown_kernel(self, kernel_id: str) -> None:
        await self._call(api.shutdown_kernel(self.url, kernel_id))

    async def sessions(self) -> list[SessionModel]:
        """The sessions (notebooks and consoles bound to kernels)."""
        return await self._call(api.sessions(self.url))  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncJupyterServer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class JupyterServer(_ServerBase):
    """A Jupyter Server's REST API for blocking code; a context manager."""

    def __init__(self, url: str, token: str | None = None, **options: Any) -> None:
        super().__init__(url, token, **options)
        self._http = httpx.Client(headers=self.headers, verify=self.verify)

    def _call(self, call: Call) -> Any:
        try:
            response = self._http.request(
                call.method, call.url, json=call.body, timeout=self._timeout(call)
            )
        except httpx.HTTPError as exc:
            raise self._unreachable(call, exc) from None
        return call.result(response.status_code, response.content)

    def kernelspecs(self) -> KernelSpecsModel:
        """The kernelspecs the server can start."""
        return self._call(api.kernelspecs(self.url))  # type: ignore[no-any-return]

    def kernels(self) -> list[KernelModel]:
        """The kernels running on the server."""
        return self._call(api.kernels(self.url))  # type: ignore[no-any-return]

    def kernel(self, kernel_id: str) -> KernelModel:
        """One kernel's model (ServerNotFoundError when there is none)."""
        return self._call(api.kernel(self.url, kernel_id))  # type: ignore[no-any-return]

    def start_kernel(
        self,
        name: str | None = None,
        *,
        path: str | None = None,
        env: dict[str, str] | None = None,
    ) -> KernelModel:
        """Start a kernel (the server's default when ``name`` is None); a kernelspec the
        server does not have is ServerNotFoundError."""
        try:
            return self._launch(api.start_kernel(self.url, name, path, env))
        except ServerUnavailableError as exc:
            if not api.may_be_unknown_kernelspec(name, exc):
                raise
            try:
                specs = self.kernelspecs()
            except ServerError:
                raise exc from None  # the first error says more
            raise api.unknown_kernelspec(self.url, name, specs) or exc from None

    def _launch(self, call: Call) -> KernelModel:
        # The request runs in a thread of its own, so that a KeyboardInterrupt (which Python
        # raises in the main thread) cannot lose its answer.
        outcome: list[Any] = []
        done = threading.Event()  # not Thread.join: one interrupted cannot be joined again

        def launch() -> None:
            try:
                outcome.append(self._call(call))
            except BaseException as exc:
                outcome.append(exc)
            finally:
                done.set()

        threading.Thread(target=launch, name="runtimelib-launch", daemon=True).start()
        try:
            done.wait()
        except KeyboardInterrupt:
            done.wait()  # a second KeyboardInterrupt leaves from here
            if isinstance(outcome[0], KernelModel):
                with contextlib.suppress(RuntimelibError):
                    self.shutdown_kernel(outcome[0].id)
            raise
        if isinstance(outcome[0], BaseException):
            raise outcome[0]
        return outcome[0]  # type: ignore[no-any-return]

    def interrupt_kernel(self, kernel_id: str) -> None:
        self._call(api.interrupt_kernel(self.url, kernel_id))

    def restart_kernel(self, kernel_id: str) -> KernelModel:
        return self._call(api.restart_kernel(self.url, kernel_id))  # type: ignore[no-any-return]

    def shutdown_kernel(self, kernel_id: str) -> None:
        self._call(api.shutdown_kernel(self.url, kernel_id))

    def sessions(self) -> list[SessionModel]:
        """The sessions (notebooks and consoles bound to kernels)."""
        return self._call(api.sessions(self.url))  # type: ignore[no-any-return]

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> JupyterServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


async def _answer_despite_asyncio_cancel(
    launch: Any,
) -> tuple[KernelModel, BaseException | None]:
    """The launch's answer, and the cancellation that came meanwhile if asyncio cancelled the
    task (``task.cancel``, ``asyncio.timeout``), which anyio's shield does not hold back. On
    trio there is nothing more to do."""
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return await launch, None
    request = asyncio.ensure_future(launch)
    try:
        return await asyncio.shield(request), None
    except asyncio.CancelledError as cancellation:
        try:
            return await request, cancellation  # a second cancellation stops waiting
        except Exception:
            raise cancellation from None
