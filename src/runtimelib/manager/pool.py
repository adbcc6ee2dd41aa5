"""Many kernels at once: start them concurrently, find them by id, stop them all."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any, Generic, TypeVar

import anyio

from ..errors import NoSuchKernelError
from .asynchronous import AsyncKernelManager
from .blocking import KernelManager

__all__ = ["AsyncMultiKernelManager", "MultiKernelManager"]


M = TypeVar("M", AsyncKernelManager, KernelManager)


class _Pool(Generic[M]):
    """Both pools' table of kernels by id."""

    def __init__(self, **defaults: Any) -> None:
        #: Keyword arguments every kernel manager gets unless a start call overrides them.
        self.defaults = defaults
        self.kernels: dict[str, M] = {}

    def __iter__(self) -> Iterator[str]:
        return iter(self.kernels)

    def __len__(self) -> int:
        return len(self.kernels)

    def __contains__(self, kernel_id: object) -> bool:
        return kernel_id in self.kernels

    def get(self, kernel_id: str) -> M:
        """The manager of a kernel by id."""
        try:
            return self.kernels[kernel_id]
        except KeyError:
            raise NoSuchKernelError(f"no kernel with id {kernel_id!r} in this pool") from None


class AsyncMultiKernelManager(_Pool[AsyncKernelManager]):
    """Kernels by id, for async code; leaving ``async with`` shuts them all down."""

    async def start_kernel(self, kernel_name: str | None = None, **kwargs: Any) -> str:
        """Start one kernel and return its id (it joins the pool once ready)."""
        km = AsyncKernelManager(kernel_name, **{**self.defaults, **kwargs})
        await km.start()
        self.kernels[km.kernel_id] = km
        return km.kernel_id

    async def start_kernels(
        self, kernel_names: Sequence[str | None], **kwargs: Any
    ) -> list[str | BaseException]:
        """Start kernels concurrently; each entry is a kernel id, or the error of that start.

        One kernel failing to start does not stop the others.
        """
        results: list[str | BaseException] = [RuntimeError("not started")] * len(kernel_names)

        async def one(index: int, name: str | None) -> None:
            try:
                results[index] = await self.start_kernel(name, **kwargs)
            except Exception as exc:
                results[index] = exc

        async with anyio.create_task_group() as tg:
            for index, name in enumerate(kernel_names):
                tg.start_soon(one, index, name)
        return results

    async def shutdown_kernel(self, kernel_id: str, *, now: bool = False) -> None:
        """Shut one kernel down and forget it."""
        km = self.get(kernel_id)
        await km.shutdown(now=now)
        self.kernels.pop(kernel_id, None)

    async def shutdown_all(self, *, now: bool = False) -> None:
        """Shut every kernel down, concurrently."""

        async def one(kernel_id: str) -> None:
            await self.shutdown_kernel(kernel_id, now=now)

        async with anyio.create_task_group() as tg:
            for kernel_id in list(self.kernels):
                tg.start_soon(one, kernel_id)

    async def __aenter__(self) -> AsyncMultiKernelManager:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with anyio.CancelScope(shield=True):
            await self.shutdown_all()


class MultiKernelManager(_Pool[KernelManager]):
    """Kernels by id, for blocking code; leaving ``with`` shuts them all down."""

    def start_kernel(self, kernel_name: str | None = None, **kwargs: Any) -> str:
        """Start one kernel and return its id (it joins the pool once ready)."""
        km = KernelManager(kernel_name, **{**self.defaults, **kwargs})
        km.start()
        self.kernels[km.kernel_id] = km
        return km.kernel_id

    def start_kernels(
        self, kernel_names: Sequence[str | None], **kwargs: Any
    ) -> list[str | BaseException]:
        """Start kernels concurrently (a thread each); each entry is an id or that start's error."""

        def one(name: str | None) -> str | BaseException:
            try:
                return self.start_kernel(name, **kwargs)
            except Exception as exc:
                return exc

        if not kernel_names:
            return []
        with ThreadPoolExecutor(max_workers=min(16, len(kernel_names))) as pool:
            return list(pool.map(one, kernel_names))

    def shutdown_kernel(self, kernel_id: str, *, now: bool = False) -> None:
        """Shut one kernel down and forget it."""
        self.get(kernel_id).shutdown(now=now)
        self.kernels.pop(kernel_id, None)

    def shutdown_all(self, *, now: bool = False) -> None:
        """Shut every kernel down, concurrently."""
        ids = list(self.kernels)
        if not ids:
            return
        with ThreadPoolExecutor(max_workers=min(16, len(ids))) as pool:
            list(pool.map(lambda k: self.shutdown_kernel(k, now=now), ids))

    def __enter__(self) -> MultiKernelManager:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown_all()
