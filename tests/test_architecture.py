"""The layers of the package, as the README's Layout section describes them: imports run
down the layers only, never into another package's private module, and no module grows past
the size where it stops being read whole."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "runtimelib"

#: Lowest first. A module may import from its own layer's other parts only where listed in
#: SIDEWAYS, and from any layer below. The package root (the lazy facade) is above them all.
LAYERS: list[set[str]] = [
    {"errors", "version", "_lazy", "media", "processes", "deadlines"},
    {"messages"},
    {"protocol"},
    {"connection", "kernelspec"},
    {"transports"},
    {"client", "kernel"},
    {"manager", "remote"},
    {"notebook_widgets", "nbfile", "notebook"},
    {"cli"},
    {"__main__"},
]
SIDEWAYS = {("notebook", "notebook_widgets"), ("notebook", "nbfile")}


def _layer(part: str) -> int:
    for index, layer in enumerate(LAYERS):
        if part in layer:
            return index
    raise AssertionError(f"runtimelib.{part} is in no layer: add it to LAYERS")


def _imports() -> list[tuple[str, str]]:
    """(importing module, imported module) for every import of runtimelib inside it; a name
    imported from a package counts as that package's submodule where one exists."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        module = ".".join(parts[:-1] if is_package else parts)
        package = module if is_package else module.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    target = node.module or ""
                targets = []
                for alias in node.names:
                    sub = Path(PACKAGE.parent, *target.split("."), alias.name)
                    is_module = sub.with_suffix(".py").exists() or sub.is_dir()
                    targets.append(f"{target}.{alias.name}" if is_module else target)
            else:
                continue
            found += [(module, t) for t in targets if t.split(".")[0] == "runtimelib"]
    return found


def test_the_scan_sees_the_imports() -> None:
    pairs = set(_imports())
    assert ("runtimelib.client.asynchronous", "runtimelib.transports.zmq") in pairs
    assert ("runtimelib.cli.dispatch", "runtimelib.errors") in pairs


def test_imports_run_down_the_layers() -> None:
    wrong = []
    for module, target in _imports():
        src, dst = module.split("."), target.split(".")
        if len(src) < 2 or len(dst) < 2 or src[1] == dst[1]:
            continue  # the facade itself, or inside one package
        if (src[1], dst[1]) in SIDEWAYS:
            continue
        if _layer(dst[1]) >= _layer(src[1]):
            wrong.append(f"{module} imports {target}")
    assert wrong == []


def test_nothing_reaches_into_another_packages_private_module() -> None:
    wrong = []
    for module, target in _imports():
        parts = target.split(".")
        for depth, part in enumerate(parts):
            owner = ".".join(parts[:depth])  # the package the private module belongs to
            private = part.startswith("_") and not part.startswith("__")
            inside = module == owner or module.startswith(owner + ".")
            if private and not inside:
                wrong.append(f"{module} imports {target}")
    assert wrong == []


def test_nothing_imports_the_package_root() -> None:
    # The root is the lazy facade for users; inside, modules name what they use.
    wrong = [f"{m} imports it" for m, t in _imports() if t == "runtimelib" and m != "runtimelib"]
    assert wrong == []


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: p.name)
def test_no_module_is_past_600_lines(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= 600


def test_the_version_is_the_one_in_pyproject() -> None:
    from runtimelib.version import __version__

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert __version__ == project["version"]
