"""Launchers: a manager starts its kernel through one (the local one, the jupyter_client
kernel provisioner its kernelspec names, or the caller's); a kernelspec that no launcher here
can start (a provisioner that is not installed, an Enterprise Gateway process proxy) is a
clear error before anything is launched or written."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from runtimelib import AsyncKernelManager, KernelManager, KernelSpec, errors
from runtimelib.manager import KernelProcess, LaunchPlan, LocalLauncher
from runtimelib.manager.provisioners import provisioner_package
from runtimelib.processes import pid_exists

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
        "kernel provisioner 'docker-provisioner', which is not installed here: pip install the"
        " package that provides it",
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
    assert provisioner_package("local-provisioner") == "jupyter_client"
    assert provisioner_package("no-such-provisioner") is None


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


# -- kernelspecs that name a jupyter_client kernel provisioner ------------------------------------

PROVISIONERS = """
from jupyter_client.provisioning import LocalProvisioner
from traitlets import Unicode


class TaggingProvisioner(LocalProvisioner):
    \"\"\"The local provisioner, with a variable set from the spec's provisioner config.\"\"\"

    tag = Unicode("none", config=True)

    async def pre_launch(self, **kwargs):
        kwargs = await super().pre_launch(**kwargs)
        kwargs["env"]["PROVISIONED_BY"] = self.tag
        return kwargs


class FailingProvisioner(TaggingProvisioner):
    async def launch_kernel(self, cmd, **kwargs):
        raise RuntimeError("no capacity on this cluster")
"""

PYTHON = [sys.executable, "-m", "runtimelib.kernel.python", "-f", "{connection_file}"]


@pytest.fixture
def provisioners(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two provisioners, registered as an installed package registers them (an entry point
    in a distribution's metadata on sys.path)."""
    site = tmp_path / "site"
    dist = site / "rtl_test_provisioners-1.0.dist-info"
    dist.mkdir(parents=True)
    (site / "rtl_test_provisioners.py").write_text(PROVISIONERS)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: rtl-test-provisioners\nVersion: 1.0\n"
    )
    (dist / "entry_points.txt").write_text(
        "[jupyter_client.kernel_provisioners]\n"
        "tagging-provisioner = rtl_test_provisioners:TaggingProvisioner\n"
        "failing-provisioner = rtl_test_provisioners:FailingProvisioner\n"
    )
    monkeypatch.syspath_prepend(str(site))


def _provisioned(tmp_path: Path, name: str) -> KernelSpec:
    config = {"provisioner_name": name, "config": {"tag": "from the spec"}}
    return _spec(tmp_path, PYTHON, {"kernel_provisioner": config})


ENV = "import os; print(os.environ.get('PROVISIONED_BY'))"


@pytest.mark.usefixtures("provisioners")
def test_a_spec_naming_a_provisioner_is_started_interrupted_and_restarted_by_it(
    tmp_path: Path, jupyter_env: Path
) -> None:
    assert provisioner_package("tagging-provisioner") == "rtl-test-provisioners"
    with KernelManager(spec=_provisioned(tmp_path, "tagging-provisioner")) as km:
        with km.client() as kc:
            assert kc.execute(ENV, timeout=30).stdout == "from the spec\n"
            first = km.pid
            assert first is not None
            assert pid_exists(first)
            code = "import time; print('sleeping', flush=True); time.sleep(30)"
            running = kc.stream(code, timeout=30)
            next(m for m in running if m.msg_type == "stream")  # the code runs
            km.interrupt()
            rest = list(running)
            assert any(
                m.msg_type == "error" and m.content.ename == "KeyboardInterrupt" for m in rest
            )
            km.restart()
            assert kc.execute(ENV, timeout=30).stdout == "from the spec\n"
            assert km.pid != first
            assert not pid_exists(first)
        second = km.pid
        connection_file = km.connection_file
        assert connection_file is not None
        assert connection_file.exists()
    assert second is not None
    assert not pid_exists(second)
    assert not connection_file.exists()


@pytest.mark.anyio
@pytest.mark.usefixtures("provisioners")
async def test_the_async_manager_starts_a_provisioned_kernel_too(
    tmp_path: Path, jupyter_env: Path
) -> None:
    async with AsyncKernelManager(spec=_provisioned(tmp_path, "tagging-provisioner")) as km:
        async with km.client() as kc:
            assert (await kc.execute(ENV, timeout=30)).stdout == "from the spec\n"
        pid = km.pid
    assert pid is not None
    assert not pid_exists(pid)
    assert list(jupyter_env.glob("kernel-*.json")) == []


@pytest.mark.usefixtures("provisioners")
def test_a_provisioner_that_fails_is_a_launch_error_that_names_it(
    tmp_path: Path, jupyter_env: Path
) -> None:
    with pytest.raises(errors.KernelLaunchError) as info:
        KernelManager(spec=_provisioned(tmp_path, "failing-provisioner")).start()
    said = str(info.value)
    assert "kernel provisioner 'failing-provisioner'" in said
    assert "no capacity on this cluster" in said
    assert list(jupyter_env.glob("kernel-*.json")) == []


def test_without_jupyter_client_a_provisioned_spec_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "jupyter_client", None)  # import fails, as uninstalled
    marker = tmp_path / "ran"
    config = {"provisioner_name": "docker-provisioner"}
    spec = _spec(tmp_path, _marker_argv(marker), {"kernel_provisioner": config})
    with pytest.raises(errors.KernelLaunchError, match=r"runtimelib\[provisioners\]"):
        KernelManager(spec=spec).start()
    assert not marker.exists()


def test_the_local_launcher_never_runs_a_provisioned_spec_as_a_command(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    config = {"provisioner_name": "docker-provisioner"}
    spec = _spec(tmp_path, _marker_argv(marker), {"kernel_provisioner": config})
    with pytest.raises(errors.KernelLaunchError, match="not as a local command"):
        KernelManager(spec=spec, launcher=LocalLauncher()).start()
    assert not marker.exists()
