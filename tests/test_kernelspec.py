"""Kernelspecs: reading kernel.json, discovery in Jupyter's search order, install and remove."""

from __future__ import annotations

import json
import logging
import os
import shutil
import site
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jupyter_core.paths
import pytest

from runtimelib import kernelspec as ks
from runtimelib.errors import KernelSpecError, NoSuchKernelError
from runtimelib.kernelspec import (
    KernelSpec,
    find_kernelspec,
    install_kernelspec,
    kernel_dirs,
    list_kernelspecs,
    remove_kernelspec,
    scan_kernelspecs,
)


@dataclass
class Dirs:
    """The isolated Jupyter directories of one test, each with its ``kernels`` subfolder."""

    path1: Path  # first JUPYTER_PATH entry
    path2: Path  # second JUPYTER_PATH entry
    data: Path  # JUPYTER_DATA_DIR, the user's data dir
    userbase: Path  # site.USER_BASE/share/jupyter
    env: Path  # {sys.prefix}/share/jupyter
    system1: Path
    system2: Path
    prefix: Path  # the (patched) sys.prefix
    root: Path


@pytest.fixture(autouse=True)
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Dirs:
    """Point every Jupyter directory of this process at tmp_path, so no real kernel leaks in."""
    root = tmp_path / "jupyter"
    prefix = root / "prefix"
    d = Dirs(
        path1=root / "path1",
        path2=root / "path2",
        data=root / "data",
        userbase=root / "userbase" / "share" / "jupyter",
        env=prefix / "share" / "jupyter",
        system1=root / "system1",
        system2=root / "system2",
        prefix=prefix,
        root=root,
    )
    monkeypatch.setenv("JUPYTER_PATH", os.pathsep.join([str(d.path1), str(d.path2)]))
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(d.data))
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(root / "config"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(root / "runtime"))
    monkeypatch.setenv("JUPYTER_PREFER_ENV_PATH", "0")
    monkeypatch.delenv("JUPYTER_PLATFORM_DIRS", raising=False)
    monkeypatch.delenv("JUPYTER_NO_CONFIG", raising=False)
    # jupyter_client also searches IPython's directory: keep that one empty too.
    (root / "ipython").mkdir(parents=True)
    monkeypatch.setenv("IPYTHONDIR", str(root / "ipython"))
    # The real sys.prefix holds ipykernel's python3 spec; jupyter_path reads these module
    # globals at call time, so patching them hides it from us and from jupyter_client alike.
    monkeypatch.setattr(sys, "prefix", str(prefix))
    monkeypatch.setattr(jupyter_core.paths, "ENV_JUPYTER_PATH", [str(d.env)])
    monkeypatch.setattr(jupyter_core.paths, "SYSTEM_JUPYTER_PATH", [str(d.system1), str(d.system2)])
    monkeypatch.setattr(site, "ENABLE_USER_SITE", True)
    monkeypatch.setattr(site, "USER_BASE", str(root / "userbase"))
    return d


def write_spec(parent: Path, dirname: str, content: Any = None, raw: str | None = None) -> Path:
    """Create ``<parent>/kernels/<dirname>/kernel.json`` (or ``<parent>/<dirname>`` if loose)."""
    spec_dir = parent / "kernels" / dirname
    spec_dir.mkdir(parents=True, exist_ok=True)
    if content is None and raw is None:
        content = {
            "argv": ["python", "-m", dirname, "-f", "{connection_file}"],
            "display_name": f"Kernel {dirname}",
            "language": "python",
            "kernel_protocol_version": "5.5",
        }
    text = raw if raw is not None else json.dumps(content)
    (spec_dir / "kernel.json").write_text(text, encoding="utf-8")
    return spec_dir


def loose_spec(tmp_path: Path, dirname: str, **extra: Any) -> Path:
    """A kernelspec folder outside every kernel directory, ready to install."""
    spec_dir = tmp_path / "src" / dirname
    spec_dir.mkdir(parents=True)
    content = {"argv": ["mykernel", "{connection_file}"], "display_name": dirname, **extra}
    (spec_dir / "kernel.json").write_text(json.dumps(content), encoding="utf-8")
    return spec_dir


def has_ipykernel() -> bool:
    try:
        import ipykernel.kernelspec  # noqa: F401
    except ImportError:
        return False
    return True


needs_ipykernel = pytest.mark.skipif(not has_ipykernel(), reason="ipykernel is not installed")


# --- search path ------------------------------------------------------------------------------


@pytest.mark.parametrize(("prefer_env", "env_first"), [("0", False), ("1", True)])
def test_kernel_dirs_follow_jupyter_path(
    dirs: Dirs, monkeypatch: pytest.MonkeyPatch, prefer_env: str, env_first: bool
) -> None:
    monkeypatch.setenv("JUPYTER_PREFER_ENV_PATH", prefer_env)
    user = [dirs.data, dirs.userbase]
    middle = [dirs.env, *user] if env_first else [*user, dirs.env]
    expected = [dirs.path1, dirs.path2, *middle, dirs.system1, dirs.system2]
    assert kernel_dirs() == [p / "kernels" for p in expected]
    assert kernel_dirs() == [Path(p) for p in jupyter_core.paths.jupyter_path("kernels")]


# --- reading one spec -----------------------------------------------------------------------


def test_from_dir_reads_every_field(tmp_path: Path) -> None:
    content = {
        "argv": ["k", "{connection_file}"],
        "display_name": "K",
        "language": "klang",
        "env": {"A": "1"},
        "interrupt_mode": "Message",
        "metadata": {"debugger": True, "nested": {"x": [1, 2]}},
        "kernel_protocol_version": "5.4",
        "unknown_future_key": 1,
    }
    spec_dir = tmp_path / "My.Kernel"
    spec_dir.mkdir()
    (spec_dir / "kernel.json").write_text(json.dumps(content))
    spec = KernelSpec.from_dir(spec_dir)
    assert spec.name == "my.kernel"
    assert spec.resource_dir == spec_dir
    assert spec.argv == ["k", "{connection_file}"]
    assert (spec.display_name, spec.language) == ("K", "klang")
    assert spec.env == {"A": "1"}
    assert spec.interrupt_mode == "message"  # compared without case, like jupyter_client
    assert spec.metadata == {"debugger": True, "nested": {"x": [1, 2]}}
    assert spec.kernel_protocol_version == "5.4"
    expected = {k: v for k, v in content.items() if k != "unknown_future_key"}
    expected["interrupt_mode"] = "message"
    assert spec.to_dict() == expected


def test_from_dir_defaults_and_bom(tmp_path: Path) -> None:
    spec_dir = tmp_path / "minimal"
    spec_dir.mkdir()
    (spec_dir / "kernel.json").write_bytes(b'\xef\xbb\xbf{"argv": ["k"]}')
    spec = KernelSpec.from_dir(spec_dir, name="Other")
    assert spec.name == "other"
    assert (spec.display_name, spec.language, spec.env, spec.metadata) == ("", "", {}, {})
    assert spec.interrupt_mode == "signal"
    assert spec.kernel_protocol_version is None
    # null is not written: jupyter_client refuses to read it.
    assert "kernel_protocol_version" not in spec.to_dict()


BROKEN_CONTENTS = {
    "invalid-json": '{"argv": ["k",',
    "not-an-object": '["k"]',
    "argv-missing": '{"display_name": "x"}',
    "argv-empty": '{"argv": []}',
    "argv-a-string": '{"argv": "k -f {connection_file}"}',
    "argv-numbers": '{"argv": ["k", 1]}',
    "env-not-str": '{"argv": ["k"], "env": {"A": 1}}',
    "display-name-int": '{"argv": ["k"], "display_name": 3}',
    "metadata-list": '{"argv": ["k"], "metadata": []}',
    "interrupt-mode-bad": '{"argv": ["k"], "interrupt_mode": "telepathy"}',
}


@pytest.mark.parametrize("case", sorted(BROKEN_CONTENTS))
def test_from_dir_rejects_broken_kernel_json(tmp_path: Path, case: str) -> None:
    spec_dir = tmp_path / case
    spec_dir.mkdir()
    (spec_dir / "kernel.json").write_text(BROKEN_CONTENTS[case])
    with pytest.raises(KernelSpecError, match=r"kernel\.json") as info:
        KernelSpec.from_dir(spec_dir)
    assert str(spec_dir / "kernel.json") in str(info.value)


def test_from_dir_without_kernel_json(tmp_path: Path) -> None:
    with pytest.raises(KernelSpecError, match=r"no kernel\.json") as info:
        KernelSpec.from_dir(tmp_path)
    assert isinstance(info.value.__cause__, FileNotFoundError)


def test_from_dir_rejects_an_invalid_directory_name(tmp_path: Path) -> None:
    spec_dir = tmp_path / "has space"
    spec_dir.mkdir()
    (spec_dir / "kernel.json").write_text('{"argv": ["k"]}')
    with pytest.raises(KernelSpecError, match="invalid kernel name"):
        KernelSpec.from_dir(spec_dir)
    assert KernelSpec.from_dir(spec_dir, name="fine").name == "fine"


def test_direct_construction_is_checked(tmp_path: Path) -> None:
    with pytest.raises(KernelSpecError, match="lowercase"):
        KernelSpec(name="Upper", resource_dir=tmp_path, argv=["k"])
    with pytest.raises(KernelSpecError, match="argv"):
        KernelSpec(name="k", resource_dir=tmp_path, argv=[])
    with pytest.raises(KernelSpecError, match="interrupt_mode"):
        KernelSpec(name="k", resource_dir=tmp_path, argv=["k"], interrupt_mode="Message")


# --- resources, command, environment ----------------------------------------------------------


def test_resources_and_logo(tmp_path: Path) -> None:
    spec_dir = tmp_path / "res"
    spec_dir.mkdir()
    (spec_dir / "kernel.json").write_text('{"argv": ["k"]}')
    spec = KernelSpec.from_dir(spec_dir)
    assert spec.resources == {}
    assert spec.logo is None
    for file_name in ("logo-32x32.png", "logo-64x64.png", "kernel.js", ".DS_Store"):
        (spec_dir / file_name).write_bytes(b"x")
    (spec_dir / "subdir").mkdir()
    assert spec.resources == {
        "kernel.js": spec_dir / "kernel.js",
        "logo-32x32.png": spec_dir / "logo-32x32.png",
        "logo-64x64.png": spec_dir / "logo-64x64.png",
    }
    assert spec.logo == spec_dir / "logo-64x64.png"
    (spec_dir / "logo-svg.svg").write_text("<svg/>")
    assert spec.logo == spec_dir / "logo-svg.svg"


def make_spec(tmp_path: Path, argv: list[str], **fields: Any) -> KernelSpec:
    return KernelSpec(name="k", resource_dir=tmp_path / "res", argv=argv, **fields)


def test_command_fills_placeholders_inside_arguments(tmp_path: Path) -> None:
    spec = make_spec(
        tmp_path,
        [
            "{prefix}/bin/kernel",
            "--connection={connection_file}",
            "-f",
            "{connection_file}",
            "--logo={resource_dir}/logo.png",
            "{unknown}",
            "{{connection_file}}",
        ],
    )
    cf = tmp_path / "run" / "kernel-1.json"
    assert spec.command(cf) == [
        f"{sys.prefix}/bin/kernel",
        f"--connection={cf}",
        "-f",
        str(cf),
        f"--logo={tmp_path / 'res'}/logo.png",
        "{unknown}",
        f"{{{cf}}}",
    ]


def test_command_makes_the_connection_file_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    spec = make_spec(tmp_path, ["k", "{connection_file}"])
    assert spec.command("kernel.json") == ["k", str(tmp_path / "kernel.json")]


@pytest.mark.parametrize(
    ("first", "replaced"),
    [
        ("python", True),
        ("python3", True),
        (f"python{sys.version_info[0]}.{sys.version_info[1]}", True),
        ("python2", False),
        ("python3.0", False),
        ("/usr/bin/python", False),
        ("ipython", False),
    ],
)
def test_command_runs_python_with_this_interpreter(
    tmp_path: Path, first: str, replaced: bool
) -> None:
    spec = make_spec(tmp_path, [first, "-m", "ipykernel_launcher", "-f", "{connection_file}"])
    cmd = spec.command("/c.json")
    assert cmd[0] == (sys.executable if replaced else first)
    assert cmd[1:] == ["-m", "ipykernel_launcher", "-f", "/c.json"]
    other = spec.command("/c.json", python="/opt/py/bin/python")
    assert other[0] == ("/opt/py/bin/python" if replaced else first)


def test_environment_expands_spec_env_from_base(tmp_path: Path) -> None:
    spec = make_spec(
        tmp_path,
        ["k"],
        env={
            "PATH": "${PATH}:/extra",
            "A": "$HOME/a",
            "UNKNOWN": "${NOPE}/x and $NOPE2",
            "LITERAL": "$$5",
            "EXTRA_WINS": "spec",
        },
    )
    base = {"PATH": "/bin", "HOME": "/h", "KEEP": "1"}
    env = spec.environment(base, {"EXTRA_WINS": "caller", "NEW": "n"})
    assert env == {
        "PATH": "/bin:/extra",
        "HOME": "/h",
        "KEEP": "1",
        "A": "/h/a",
        "UNKNOWN": "${NOPE}/x and $NOPE2",
        "LITERAL": "$5",
        "EXTRA_WINS": "caller",
        "NEW": "n",
    }
    assert base == {"PATH": "/bin", "HOME": "/h", "KEEP": "1"}  # not mutated


def test_environment_defaults_to_os_environ(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RTL_TEST_VAR", "hello")
    monkeypatch.setenv("PYTHONEXECUTABLE", "/wrong/python")
    spec = make_spec(tmp_path, ["k"], env={"GREETING": "${RTL_TEST_VAR} world"}, language="python")
    env = spec.environment()
    assert env["GREETING"] == "hello world"
    assert env["RTL_TEST_VAR"] == "hello"
    # A python kernel must not inherit the parent's PYTHONEXECUTABLE, as with jupyter_client.
    assert "PYTHONEXECUTABLE" not in env
    other = make_spec(tmp_path, ["k"], language="julia")
    assert other.environment()["PYTHONEXECUTABLE"] == "/wrong/python"


# --- discovery --------------------------------------------------------------------------------


def test_list_across_dirs_first_match_wins(dirs: Dirs) -> None:
    first = write_spec(dirs.path1, "dup", {"argv": ["first"], "display_name": "first"})
    write_spec(dirs.data, "dup", {"argv": ["second"], "display_name": "second"})
    write_spec(dirs.path1, "alpha")
    write_spec(dirs.data, "zeta")
    write_spec(dirs.system2, "beta")
    (dirs.data / "kernels" / "not-a-spec").mkdir()  # no kernel.json: ignored
    (dirs.data / "kernels" / "stray-file").write_text("x")
    scan = scan_kernelspecs()
    mine = {"alpha", "beta", "dup", "zeta"}
    assert mine <= set(scan.specs)
    assert set(scan.specs) - mine <= {"python3"}  # only ipykernel's built-in may be added
    assert list(scan.specs) == sorted(scan.specs)
    assert scan.specs["dup"].resource_dir == first
    assert scan.specs["dup"].argv == ["first"]
    assert scan.broken == []
    names = [spec.name for spec in list_kernelspecs()]
    assert names == sorted(scan.specs)
    assert find_kernelspec("dup").display_name == "first"
    assert find_kernelspec("beta").resource_dir == dirs.system2 / "kernels" / "beta"


def test_env_dir_order_follows_prefer_env_path(dirs: Dirs, monkeypatch: pytest.MonkeyPatch) -> None:
    write_spec(dirs.data, "where", {"argv": ["user"]})
    write_spec(dirs.env, "where", {"argv": ["env"]})
    assert find_kernelspec("where").argv == ["user"]
    monkeypatch.setenv("JUPYTER_PREFER_ENV_PATH", "1")
    assert find_kernelspec("where").argv == ["env"]
    assert scan_kernelspecs().specs["where"].argv == ["env"]


def test_lookup_is_case_insensitive(dirs: Dirs) -> None:
    spec_dir = write_spec(dirs.path2, "MyKernel")
    for query in ("mykernel", "MYKERNEL", "MyKernel"):
        spec = find_kernelspec(query)
        assert spec.name == "mykernel"
        assert spec.resource_dir == spec_dir
    assert scan_kernelspecs().specs["mykernel"].resource_dir == spec_dir


def test_same_name_differing_by_case_in_one_dir(dirs: Dirs) -> None:
    write_spec(dirs.path1, "Twin", {"argv": ["upper"]})
    lower = write_spec(dirs.path1, "twin", {"argv": ["lower"]})
    if not (dirs.path1 / "kernels" / "Twin").samefile(lower):  # case-sensitive filesystem
        assert find_kernelspec("TWIN").resource_dir == lower
        assert scan_kernelspecs().specs["twin"].argv == ["lower"]
    assert find_kernelspec("twin").argv == ["lower"]


INVALID_NAMES = ["../etc", "a/b", "..", ".", "", "has space", "kernel\x00", "ünï", "a\\b", "/abs"]


@pytest.mark.parametrize("name", INVALID_NAMES)
def test_invalid_names_are_rejected_before_any_filesystem_access(
    dirs: Dirs, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    # A spec that the traversal would reach if the name were joined to a kernel directory.
    write_spec(dirs.root, "etc")
    calls: list[str] = []

    def spy(label: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls.append(label)
            return real(*args, **kwargs)

        return wrapper

    for func in (find_kernelspec, remove_kernelspec):
        with monkeypatch.context() as m:
            for attr in ("stat", "lstat", "scandir", "listdir", "rmdir", "unlink"):
                m.setattr(os, attr, spy(attr, getattr(os, attr)))
            m.setattr(ks, "kernel_dirs", spy("kernel_dirs", ks.kernel_dirs))
            with pytest.raises(KernelSpecError, match="invalid kernel name") as info:
                func(name)
        assert calls == []
        assert not isinstance(info.value, NoSuchKernelError)
    assert (dirs.root / "kernels" / "etc" / "kernel.json").exists()


@pytest.mark.parametrize("case", sorted(BROKEN_CONTENTS))
def test_broken_spec_is_reported_and_others_still_list(
    dirs: Dirs, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    bad = write_spec(dirs.path1, case, raw=BROKEN_CONTENTS[case])
    write_spec(dirs.path2, "good")
    scan = scan_kernelspecs()
    assert "good" in scan.specs
    assert case not in scan.specs
    [broken] = scan.broken
    assert (broken.name, broken.path) == (case, bad)
    assert str(bad / "kernel.json") in broken.error
    with caplog.at_level(logging.WARNING, logger="runtimelib.kernelspec"):
        names = [spec.name for spec in list_kernelspecs()]
    assert "good" in names
    assert case not in names
    assert any(case in record.getMessage() for record in caplog.records)
    with pytest.raises(KernelSpecError, match=r"kernel\.json") as info:
        find_kernelspec(case)
    assert not isinstance(info.value, NoSuchKernelError)


def test_broken_spec_shadows_a_valid_one_later_in_the_path(dirs: Dirs) -> None:
    bad = write_spec(dirs.path1, "shadowed", raw="not json")
    write_spec(dirs.system1, "shadowed")
    scan = scan_kernelspecs()
    assert "shadowed" not in scan.specs
    assert [(b.name, b.path) for b in scan.broken] == [("shadowed", bad)]
    with pytest.raises(KernelSpecError, match="invalid kernelspec"):
        find_kernelspec("shadowed")


def test_invalid_directory_names_are_reported_not_listed(dirs: Dirs) -> None:
    bad = write_spec(dirs.path1, "has space")
    write_spec(dirs.path1, "ok")
    scan = scan_kernelspecs()
    assert "has space" not in scan.specs
    assert "ok" in scan.specs
    assert [(b.name, b.path) for b in scan.broken] == [("has space", bad)]
    assert "invalid kernel name" in scan.broken[0].error


def test_no_such_kernel_lists_available_names(dirs: Dirs) -> None:
    write_spec(dirs.path1, "alpha")
    write_spec(dirs.data, "beta")
    with pytest.raises(NoSuchKernelError) as info:
        find_kernelspec("Gamma")
    assert isinstance(info.value, LookupError)
    assert isinstance(info.value, KernelSpecError)
    message = str(info.value)
    assert "'Gamma'" in message
    assert "alpha" in message
    assert "beta" in message


@needs_ipykernel
def test_python3_falls_back_to_ipykernel_when_not_installed(dirs: Dirs) -> None:
    from ipykernel.kernelspec import RESOURCES

    spec = find_kernelspec("Python3")
    assert spec.name == "python3"
    assert spec.resource_dir == Path(RESOURCES)
    assert spec.argv == [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    assert spec.language == "python"
    assert spec.logo is not None
    assert scan_kernelspecs().specs["python3"] == spec
    # The built-in spec is not installed anywhere: there is nothing to remove.
    with pytest.raises(KernelSpecError, match="built-in"):
        remove_kernelspec("python3")
    # An installed python3, even a broken one, takes precedence.
    installed = write_spec(dirs.system2, "python3", {"argv": ["python", "-m", "mine"]})
    assert find_kernelspec("python3").resource_dir == installed
    write_spec(dirs.path1, "python3", raw="{")
    scan = scan_kernelspecs()
    assert "python3" not in scan.specs
    assert [b.name for b in scan.broken] == ["python3"]


def test_without_ipykernel_python3_is_not_found(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ipykernel.kernelspec", None)  # its import now fails
    with pytest.raises(NoSuchKernelError):
        find_kernelspec("python3")
    assert "python3" not in scan_kernelspecs().specs
    with pytest.raises(NoSuchKernelError):
        remove_kernelspec("python3")


# --- install and remove -----------------------------------------------------------------------


def test_install_user_and_find(dirs: Dirs, tmp_path: Path) -> None:
    source = loose_spec(tmp_path, "MySpec")
    (source / "logo-64x64.png").write_bytes(b"png")
    dest = install_kernelspec(source, user=True)
    assert dest == dirs.data / "kernels" / "myspec"
    assert (dest / "logo-64x64.png").read_bytes() == b"png"
    spec = find_kernelspec("myspec")
    assert spec.resource_dir == dest
    assert spec.logo == dest / "logo-64x64.png"
    assert source.exists()  # copied, not moved


@pytest.mark.parametrize("where", ["prefix", "sys_prefix", "default"])
def test_install_destinations(dirs: Dirs, tmp_path: Path, where: str) -> None:
    source = loose_spec(tmp_path, "spec")
    other_prefix = tmp_path / "other-prefix"
    if where == "prefix":
        dest = install_kernelspec(source, name="Named", prefix=other_prefix)
        assert dest == other_prefix / "share" / "jupyter" / "kernels" / "named"
        # That prefix is not searched, so the spec is not found.
        with pytest.raises(NoSuchKernelError):
            find_kernelspec("named")
    elif where == "sys_prefix":
        dest = install_kernelspec(source, name="Named", sys_prefix=True)
        assert dest == dirs.prefix / "share" / "jupyter" / "kernels" / "named"
        assert find_kernelspec("named").resource_dir == dest
    else:
        dest = install_kernelspec(source, name="Named")
        assert dest == dirs.system1 / "kernels" / "named"
        assert find_kernelspec("named").resource_dir == dest
    assert KernelSpec.from_dir(dest).argv == ["mykernel", "{connection_file}"]


def test_install_replaces_unless_told_not_to(dirs: Dirs, tmp_path: Path) -> None:
    old = write_spec(dirs.data, "spec", {"argv": ["old"]})
    (old / "old-only.txt").write_text("x")
    source = loose_spec(tmp_path, "spec")
    with pytest.raises(KernelSpecError, match="already installed"):
        install_kernelspec(source, user=True, replace=False)
    assert find_kernelspec("spec").argv == ["old"]
    dest = install_kernelspec(source, user=True)
    assert dest == old
    assert find_kernelspec("spec").argv == ["mykernel", "{connection_file}"]
    assert not (dest / "old-only.txt").exists()


def test_install_rejects_bad_sources_and_names(dirs: Dirs, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "logo-32x32.png").write_bytes(b"x")
    with pytest.raises(KernelSpecError, match=r"no kernel\.json"):
        install_kernelspec(empty, user=True)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "kernel.json").write_text('{"argv": []}')
    with pytest.raises(KernelSpecError, match="argv"):
        install_kernelspec(broken, user=True)
    good = loose_spec(tmp_path, "good")
    for bad_name in ("../escape", "..", "."):
        with pytest.raises(KernelSpecError, match="invalid kernel name"):
            install_kernelspec(good, name=bad_name, user=True)
    with pytest.raises(ValueError, match="at most one"):
        install_kernelspec(good, user=True, sys_prefix=True)
    assert not (dirs.data / "kernels").exists()
    assert not (dirs.root / "escape").exists()
    # A kernel called ".." would have replaced the whole data directory.
    (dirs.data / "keep.txt").parent.mkdir(parents=True)
    (dirs.data / "keep.txt").write_text("x")
    with pytest.raises(KernelSpecError, match="invalid kernel name"):
        install_kernelspec(good, name="..", user=True)
    assert (dirs.data / "keep.txt").exists()


def test_install_permission_error_becomes_kernelspec_error(
    dirs: Dirs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = loose_spec(tmp_path, "spec")

    def denied(src: Any, dst: Any, **kwargs: Any) -> Any:
        Path(dst).mkdir(parents=True)  # a partial copy that must not be left behind
        raise PermissionError(13, "Permission denied", str(dst))

    monkeypatch.setattr(shutil, "copytree", denied)
    with pytest.raises(KernelSpecError, match="cannot install") as info:
        install_kernelspec(source, user=True)
    assert isinstance(info.value.__cause__, PermissionError)
    assert not (dirs.data / "kernels" / "spec").exists()


def test_remove_the_spec_find_would_use(dirs: Dirs) -> None:
    first = write_spec(dirs.path2, "Twice", {"argv": ["first"]})
    second = write_spec(dirs.system1, "twice", {"argv": ["second"]})
    assert remove_kernelspec("TWICE") == first
    assert not first.exists()
    assert find_kernelspec("twice").resource_dir == second
    assert remove_kernelspec("twice") == second
    with pytest.raises(NoSuchKernelError, match="twice"):
        find_kernelspec("twice")
    with pytest.raises(NoSuchKernelError):
        remove_kernelspec("twice")


def test_remove_broken_and_symlinked_specs(dirs: Dirs, tmp_path: Path) -> None:
    bad = write_spec(dirs.path1, "bad", raw="{")
    assert remove_kernelspec("bad") == bad
    assert not bad.exists()
    target = loose_spec(tmp_path, "target")
    link = dirs.path1 / "kernels" / "linked"
    link.symlink_to(target, target_is_directory=True)
    assert find_kernelspec("linked").resource_dir == link
    assert remove_kernelspec("linked") == link
    assert not os.path.lexists(link)
    assert (target / "kernel.json").exists()  # the link went, not what it pointed at


# --- agreement with jupyter_client ------------------------------------------------------------


def test_discovery_agrees_with_jupyter_client(dirs: Dirs) -> None:
    kernelspec = pytest.importorskip("jupyter_client.kernelspec")
    full = {
        "argv": ["python3", "-m", "full", "-f", "{connection_file}"],
        "display_name": "Full",
        "language": "python",
        "env": {"A": "${HOME}/a"},
        "interrupt_mode": "message",
        "metadata": {"debugger": True},
        "kernel_protocol_version": "5.3",
    }
    write_spec(dirs.path1, "full", full)
    write_spec(dirs.path1, "dup", {"argv": ["a"], "kernel_protocol_version": "5.0"})
    write_spec(dirs.system1, "dup", {"argv": ["b"], "kernel_protocol_version": "5.0"})
    write_spec(dirs.data, "CamelCase")
    write_spec(dirs.env, "envspec")
    write_spec(dirs.userbase, "userbase-spec")
    write_spec(dirs.system2, "broken", raw="{")

    manager = kernelspec.KernelSpecManager()
    theirs = manager.find_kernel_specs()
    scan = scan_kernelspecs()
    ours = {name: str(spec.resource_dir) for name, spec in scan.specs.items()}
    ours.update({b.name: str(b.path) for b in scan.broken})
    assert ours == theirs
    assert {"full", "dup", "camelcase", "envspec", "userbase-spec", "broken"} <= set(ours)

    for name in ("full", "dup", "camelcase", "envspec") + (("python3",) if has_ipykernel() else ()):
        assert find_kernelspec(name).to_dict() == manager.get_kernel_spec(name).to_dict(), name
        assert str(find_kernelspec(name).resource_dir) == manager.get_kernel_spec(name).resource_dir
