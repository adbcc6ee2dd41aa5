"""Auto-restart and death callbacks, kernel pools, and kernels running on this machine."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from runtimelib import (
    AsyncKernelManager,
    AsyncMultiKernelManager,
    ConnectionInfo,
    KernelManager,
    MultiKernelManager,
    errors,
)
from runtimelib.manager import find_running_kernel, list_running_kernels, prune_stale_kernels

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("jupyter_env")]


def _until(predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


async def _until_async(predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
    with anyio.move_on_after(timeout):
        while not predicate():
            await anyio.sleep(0.05)
        return True
    return False


@pytest.mark.anyio
async def test_async_auto_restart_then_death_when_budget_is_spent(assert_gone: list[int]) -> None:
    events: list[object] = []
    async with AsyncKernelManager("python3", auto_restart=True, restart_limit=1) as km:
        km.on_restart.append(lambda m: events.append("restarted"))
        km.on_death.append(lambda m, code: events.append(("died", code)))
        async with km.client() as kc:
            assert km.pid is not None
            first = km.pid
            assert_gone.append(first)
            os.kill(first, signal.SIGKILL)
            assert await _until_async(lambda: events == ["restarted"])
            assert km.pid is not None
            assert km.pid != first
            assert_gone.append(km.pid)
            # The same client reaches the restarted kernel.
            assert (await kc.execute("6 * 7", timeout=30)).result.data["text/plain"] == "42"  # type: ignore[union-attr]
            os.kill(km.pid, signal.SIGKILL)  # the budget of one restart is spent
            assert await _until_async(lambda: len(events) == 2)
            assert events[1] == ("died", -signal.SIGKILL)
            with pytest.raises(errors.KernelDiedError):
                await kc.execute("1", timeout=30)


def test_blocking_auto_restart_and_death_callback(
    assert_gone: list[int], jupyter_env: Path
) -> None:
    events: list[object] = []
    with KernelManager("python3", auto_restart=True, restart_limit=1) as km:
        km.on_restart.append(lambda m: events.append("restarted"))
        km.on_death.append(lambda m, code: events.append(("died", code)))
        with km.client() as kc:
            assert km.pid is not None
            assert_gone.append(km.pid)
            os.kill(km.pid, signal.SIGKILL)
            assert _until(lambda: events == ["restarted"])
            assert km.pid is not None
            assert_gone.append(km.pid)
            assert kc.execute("1 + 1", timeout=30).status == "ok"
            os.kill(km.pid, signal.SIGKILL)
            assert _until(lambda: len(events) == 2)
            assert events[1] == ("died", -signal.SIGKILL)
            assert list(jupyter_env.glob("kernel-*.json")) == []  # a dead kernel's file is gone
            with pytest.raises(errors.KernelDiedError):
                kc.execute("1", timeout=30)


@pytest.mark.anyio
async def test_async_client_works_at_once_after_each_restart(assert_gone: list[int]) -> None:
    # No pause between the restart and the request: the client must not answer it with the
    # old process's death, nor lose the new kernel's idle.
    async with AsyncKernelManager("python3") as km, km.client() as kc:
        for round in range(3):
            assert km.pid is not None
            assert_gone.append(km.pid)
            await km.restart()
            result = await kc.execute(f"{round} + 40", timeout=30)
            assert result.result is not None
            assert result.result.data["text/plain"] == str(round + 40)
        assert km.pid is not None
        assert_gone.append(km.pid)


def test_blocking_client_works_at_once_after_each_restart(assert_gone: list[int]) -> None:
    with KernelManager("python3") as km, km.client() as kc:
        for round in range(3):
            assert km.pid is not None
            assert_gone.append(km.pid)
            km.restart()
            assert kc.execute(f"print({round})", timeout=30).stdout == f"{round}\n"
        assert km.pid is not None
        assert_gone.append(km.pid)


@pytest.mark.anyio
async def test_without_auto_restart_a_death_is_reported(assert_gone: list[int]) -> None:
    died: list[int | None] = []
    async with AsyncKernelManager("python3") as km:
        km.on_death.append(lambda m, code: died.append(code))
        assert km.pid is not None
        assert_gone.append(km.pid)
        os.kill(km.pid, signal.SIGKILL)
        assert await _until_async(lambda: died == [-signal.SIGKILL])
        assert not km.is_alive()


@pytest.mark.anyio
async def test_async_pool_isolates_a_failing_start(assert_gone: list[int]) -> None:
    async with AsyncMultiKernelManager() as pool:
        results = await pool.start_kernels(["python3", "exits-at-once", "python3", "no-such"])
        assert isinstance(results[1], errors.KernelLaunchError)
        assert isinstance(results[3], errors.NoSuchKernelError)
        ids = [r for r in results if isinstance(r, str)]
        assert len(ids) == 2
        assert set(pool) == set(ids)
        for kernel_id in ids:
            km = pool.get(kernel_id)
            assert km.pid is not None
            assert_gone.append(km.pid)
            assert km.is_alive()
        with pytest.raises(errors.NoSuchKernelError):
            pool.get("not-an-id")
        await pool.shutdown_kernel(ids[0])
        assert list(pool) == [ids[1]]
    assert len(pool) == 0


def test_blocking_pool_starts_concurrently_and_stops_all(assert_gone: list[int]) -> None:
    with MultiKernelManager() as pool:
        ids = pool.start_kernels(["python3", "python3", "bash"])
        assert all(isinstance(i, str) for i in ids)
        ports = {p for i in pool for p in pool.get(i).connection_info.ports.values()}  # type: ignore[union-attr]
        assert len(ports) == 15
        assert_gone.extend(pool.get(i).pid for i in pool)  # type: ignore[misc]
    assert len(pool) == 0


def test_running_kernels_are_listed_attached_and_pruned(
    jupyter_env: Path, assert_gone: list[int]
) -> None:
    stale = ConnectionInfo.new(kernel_name="gone")
    stale_file = jupyter_env / "kernel-stale-one.json"
    jupyter_env.mkdir(parents=True, exist_ok=True)
    stale.write(stale_file)
    (jupyter_env / "kernel-garbage.json").write_text("not json")
    (jupyter_env / "kernel-garbage.json").chmod(0o600)
    with KernelManager("python3") as km:
        assert km.pid is not None
        assert_gone.append(km.pid)
        found = {k.kernel_id: k for k in list_running_kernels()}
        assert found[km.kernel_id].alive
        assert found[km.kernel_id].kernel_name == "python3"
        assert not found["stale-one"].alive
        assert found["garbage"].connection_info is None
        assert found["garbage"].error
        # Attach by id, by unique prefix and by path.
        assert find_running_kernel(km.kernel_id) == km.connection_info
        assert find_running_kernel(km.kernel_id[:8]) == km.connection_info
        assert km.connection_file is not None
        assert find_running_kernel(km.connection_file) == km.connection_info
        with pytest.raises(errors.ConnectionFileError):
            find_running_kernel("nothing-like-this")
        # Young stale files are kept (their kernel may be starting); old ones go.
        young = prune_stale_kernels()
        assert young.removed == []
        assert [k.kernel_id for k in young.too_young] == ["stale-one"]
        old = time.time() - 3600
        os.utime(stale_file, (old, old))
        pruned = prune_stale_kernels()
        assert [k.kernel_id for k in pruned.removed] == ["stale-one"]
        assert pruned.too_young == []
        assert not stale_file.exists()
        assert (jupyter_env / "kernel-garbage.json").exists()  # not ours to judge
        assert km.connection_file.exists()
    (jupyter_env / "kernel-garbage.json").unlink()


def test_an_ambiguous_kernel_id_prefix_is_an_error(jupyter_env: Path) -> None:
    jupyter_env.mkdir(parents=True, exist_ok=True)
    for kernel_id in ("abc-1", "abc-2"):
        ConnectionInfo.new().write(jupyter_env / f"kernel-{kernel_id}.json")
    with pytest.raises(errors.ConnectionFileError, match="several"):
        find_running_kernel("abc")
    assert find_running_kernel("abc-2").shell_port > 0
    for path in jupyter_env.glob("kernel-*.json"):
        path.unlink()


# A kernel that fails its start once when a marker file exists (as one that found its ports
# still taken would), then runs the built-in Python kernel.
FLAKY_START = """
import os, runpy, sys
marker = os.environ["FLAKY_MARKER"]
if os.path.exists(marker):
    os.remove(marker)
    sys.exit("Address already in use (pretend)")
sys.argv[0] = "runtimelib.kernel.python"
runpy.run_module("runtimelib.kernel.python", run_name="__main__")
"""


def _flaky_spec(jupyter_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    spec = Path(os.environ["JUPYTER_PATH"]) / "kernels" / "flaky-start"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-c", FLAKY_START, "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "flaky"}))
    marker = tmp_path / "fail-next-start"
    monkeypatch.setenv("FLAKY_MARKER", str(marker))
    return marker


def test_a_restart_whose_new_kernel_fails_once_starts_it_again(
    jupyter_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, assert_gone: list[int]
) -> None:
    marker = _flaky_spec(jupyter_env, tmp_path, monkeypatch)
    with KernelManager("flaky-start") as km, km.client() as kc:
        assert km.pid is not None
        assert_gone.append(km.pid)
        ports = km.connection_info.ports if km.connection_info else None
        marker.touch()
        km.restart()
        assert not marker.exists()  # the first new kernel did fail
        assert km.pid is not None
        assert_gone.append(km.pid)
        assert km.connection_info is not None
        assert km.connection_info.ports == ports
        assert kc.execute("print('second try')", timeout=30).stdout == "second try\n"
    assert list(jupyter_env.glob("kernel-*.json")) == []


@pytest.mark.anyio
async def test_async_restart_whose_new_kernel_fails_once_starts_it_again(
    jupyter_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, assert_gone: list[int]
) -> None:
    marker = _flaky_spec(jupyter_env, tmp_path, monkeypatch)
    async with AsyncKernelManager("flaky-start") as km, km.client() as kc:
        assert km.pid is not None
        assert_gone.append(km.pid)
        marker.touch()
        await km.restart()
        assert not marker.exists()
        assert km.pid is not None
        assert_gone.append(km.pid)
        assert (await kc.execute("print('second try')", timeout=30)).stdout == "second try\n"
