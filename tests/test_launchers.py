"""Launchers: a manager starts its kernel through one (the local one by default, or the
caller's), and a kernelspec that another launcher must start (a jupyter_client kernel
provisioner, an Enterprise Gateway process proxy) is a clear error before anything is
launched or written."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from runtimelib import AsyncKernelManager, KernelManager, KernelSpec, errors
from runtimelib.kernelspec import _provisioner_package
from runtimelib.manager import KernelProcess, LaunchPlan, LocalLauncher

from .test_cli import cli

pytestmark = pytest.mark.usefixtures("jupyter_env")

ECHO = [sys.executable, "-m", "runtimelib.kernel.echo", "-f", "{connection_file}"]


def _spec(tmp_path: Path, argv: list[str], metadata: dict[str, object]) -> KernelSpec:
    return KernelSpec(name="other", resource_dir=tmp_path, argv=argv, metadata=metadata)


def _marker_argv(marker: Path, *extra: str) -> list[str]:
    """A command that leaves a file behind if it is ever run."""
    return [sys.executable, "-c", f"open({str(marker)!r}, 'w')", *extra]


CASES = {
    "provisioner": (
        {"kernel_provisioner": {"provisioner_name": "docker-provisioner", "config": {}}},
        (),
        "kernel provisioner 'docker-provisioner', which runtimelib does not run: start it"
        " with jupyter_client or a Jupyter Server (it is not installed here",
    ),
    "gateway": (
        {"process_proxy": {"class_name": "enterprise_gateway.services.processproxies.k8s"}},
        (),
        "is for Enterprise Gateway",
    ),
    "placeholders": (
        {},
        ("--RemoteProcessProxy.response-address", "{response_address}", "{public_key}"),
        "placeholders runtimelib does not fill: {public_key}, {response_address}",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_a_spec_for_another_launcher_fails_before_launch(
    case: str, tmp_path: Path, jupyter_env: Path
) -> None:
    metadata, extra, said = CASES[case]
    marker = tmp_path / "ran"
    spec = _spec(tmp_path, _marker_argv(marker, *extra), metadata)
    with pytest.raises(errors.KernelLaunchError, match=f"kernelspec 'other'.*{said[:30]}") as info:
        KernelManager(spec=spec).start()
    assert said in str(info.value)
    assert not marker.exists()  # nothing was launched
    assert list(jupyter_env.glob("kernel-*.json")) == []  # nothing was written


@pytest.mark.anyio
async def test_the_async_manager_refuses_the_same(tmp_path: Path) -> None:
    metadata, extra, _ = CASES["gateway"]
    spec = _spec(tmp_path, _marker_argv(tmp_path / "ran", *extra), metadata)
    with pytest.raises(errors.KernelLaunchError, match="Enterprise Gateway"):
        await AsyncKernelManager(spec=spec).start()
    assert not (tmp_path / "ran").exists()


def test_jupyter_clients_local_provisioner_is_a_plain_launch(tmp_path: Path) -> None:
    spec = _spec(tmp_path, ECHO, {"kernel_provisioner": {"provisioner_name": "local-provisioner"}})
    with KernelManager(spec=spec) as km, km.client() as kc:
        assert kc.execute("hello", timeout=30).stdout == "hello\n"


def test_an_installed_provisioner_is_named_with_its_package() -> None:
    # jupyter_client registers its local provisioner under this name.
    assert _provisioner_package("local-provisioner") == "jupyter_client"
    assert _provisioner_package("no-such-provisioner") is None


def test_the_command_says_so_in_one_line(tmp_path: Path, jupyter_env: Path) -> None:
    folder = jupyter_env.parent / "path" / "kernels" / "docker-python"
    folder.mkdir(parents=True)
    metadata, _, said = CASES["provisioner"]
    kernel = {"argv": ECHO, "display_name": "in docker", "metadata": metadata}
    (folder / "kernel.json").write_text(json.dumps(kernel))
    done = cli("run", "-k", "docker-python", "-c", "hello")
    assert done.returncode == 4
    assert done.stderr.count("\n") == 1
    assert said in done.stderr
    assert "Traceback" not in done.stderr


class _Tagging(LocalLauncher):
    """A launcher of our own: the local one, with a variable only it sets, and a record."""

    def __init__(self, refuse: str | None = None) -> None:
        self.plans: list[LaunchPlan] = []
        self.refusal = refuse

    def refuses(self, spec: KernelSpec) -> str | None:
        return self.refusal or super().refuses(spec)

    def launch(self, plan: LaunchPlan) -> KernelProcess:
        self.plans.append(plan)
        return super().launch(replace(plan, env={**plan.env, "LAUNCHED_BY": "tagging"}))


def test_a_manager_starts_and_restarts_through_its_launcher(jupyter_env: Path) -> None:
    launcher = _Tagging()
    with KernelManager("runtimelib-python", launcher=launcher) as km, km.client() as kc:
        code = "import os; print(os.environ['LAUNCHED_BY'])"
        assert kc.execute(code, timeout=30).stdout == "tagging\n"
        km.restart()
        assert kc.execute(code, timeout=30).stdout == "tagging\n"
    assert len(launcher.plans) == 2
    first = launcher.plans[0]
    assert first.spec.name == "runtimelib-python"
    assert str(first.connection_file) in first.argv  # the placeholder was filled


@pytest.mark.anyio
async def test_a_launcher_that_refuses_stops_the_start_before_anything_is_written(
    jupyter_env: Path,
) -> None:
    launcher = _Tagging(refuse="not on this cluster")
    with pytest.raises(errors.KernelLaunchError, match="not on this cluster"):
        await AsyncKernelManager("runtimelib-python", launcher=launcher).start()
    assert launcher.plans == []
    assert list(jupyter_env.glob("kernel-*.json")) == []
