"""The ``runtimelib`` command against the ``jupyter`` commands, side by side in one run.

    python bench/cli.py [--rounds 5] [--quick]

Every command is a real subprocess, timed on the wall clock from launch to exit, with its
output captured and its exit code checked: a failing command stops the benchmark. Rows:

- ``runtimelib run -k python3 -c "print('hi')"`` against ``jupyter run --kernel=python3 hello.py``
- ``runtimelib run -k runtimelib-python -c "print('hi')"`` against the same ``jupyter run``
- ``runtimelib execute NB.ipynb -k python3`` against ``jupyter execute --kernel_name=python3``,
  on a generated notebook of 50 small code cells (neither writes the notebook back)
- ``runtimelib --help`` in absolute time, as the console script and as ``python -m runtimelib``,
  next to ``jupyter --help``; ``python -c pass`` (the interpreter's floor) and
  ``jupyter execute --help`` are listed for reference
- the execute row again in a second environment, a fresh virtual environment with only
  runtimelib, ipykernel and nbclient (no jupyter_server, whose jsonschema extras make
  ``import nbformat`` cost seconds): ``--plain-env`` builds it (about a minute, with pip)

The execute rows also give the ratio to a floor: ``bench/_raw_execute.py``, the same notebook
run by hand with pyzmq alone (start the kernel, run the cells, shut it down), in the same
environment. Most of a runner's time is the kernel's own (its start above all); what is
above the floor is the runner's.

Console scripts are looked up in this interpreter's scripts folder first, then on PATH, so a
version manager's shim in front of both tools (pyenv's) is not timed; when the ``runtimelib``
found first on PATH is such a shim, an extra ``--help`` row shows what it costs. The commands
run with a temporary JUPYTER_RUNTIME_DIR and a temporary byte-code cache. After one untimed
warm-up run of every command, each round runs the contenders alternately (A, B, A, B, ...);
medians and the ratio runtimelib / anchor are printed with the targets.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat

from _env import cache_bytecode

CELLS = 50
RAW_EXECUTE = str(Path(__file__).with_name("_raw_execute.py"))
HELLO = "print('hi')"
# Long enough for a cold kernel on a busy machine; past it the benchmark gives up.
COMMAND_TIMEOUT = 300.0


@dataclass(frozen=True)
class Command:
    """One timed subprocess: a short name, its argv, and text its stdout must contain."""

    name: str
    argv: list[str]
    expect: str | None = None


@dataclass(frozen=True)
class Row:
    """One line of the table: our command, its anchor, and the target it should meet."""

    label: str
    ours: str
    anchor: str
    target: float
    absolute: bool = False  # the target is a wall time in seconds, not a ratio
    floor: str | None = None  # the least any tool can take for the same work


def _script(name: str) -> str | None:
    """The console script installed with this interpreter, else the first one on PATH."""
    search = os.pathsep.join([sysconfig.get_path("scripts"), os.environ.get("PATH", os.defpath)])
    return shutil.which(name, path=search)


def _write_notebook(path: Path) -> None:
    new_cell = nbformat.v4.new_code_cell
    cells = [new_cell(f"x{i} = {i} * 2\nprint(x{i})") for i in range(CELLS)]  # type: ignore[no-untyped-call]
    nb = nbformat.v4.new_notebook(cells=cells)  # type: ignore[no-untyped-call]
    spec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["kernelspec"] = spec
    nbformat.write(nb, path)  # type: ignore[no-untyped-call]


def _plan(jupyter: str) -> tuple[dict[str, Command], list[str], list[Row]]:
    """The commands, the order one round runs them in, and the table rows."""
    module = [sys.executable, "-m", "runtimelib"]
    script = _script("runtimelib")
    ours = [script] if script is not None else module
    how = "script" if script is not None else "-m"
    commands = {
        c.name: c
        for c in [
            Command("run python3", [*ours, "run", "-k", "python3", "-c", HELLO], "hi"),
            Command(
                "run runtimelib-python",
                [*ours, "run", "-k", "runtimelib-python", "-c", HELLO],
                "hi",
            ),
            Command("jupyter run", [jupyter, "run", "--kernel=python3", "hello.py"], "hi"),
            Command("execute", [*ours, "execute", "NB.ipynb", "-k", "python3"]),
            Command("jupyter execute", [jupyter, "execute", "--kernel_name=python3", "NB.ipynb"]),
            Command("raw execute", [sys.executable, RAW_EXECUTE, "NB.ipynb"], f"{CELLS} cells"),
            Command("--help -m", [*module, "--help"], "usage"),
            Command("jupyter --help", [jupyter, "--help"], "usage"),
            Command("python -c pass", [sys.executable, "-c", "pass"]),
            Command("jupyter execute --help", [jupyter, "execute", "--help"]),
        ]
    }
    # Each runtimelib command sits next to its anchor, so noise in a round hits both.
    order = ["run python3", "jupyter run", "run runtimelib-python", "jupyter run"]
    order += ["execute", "jupyter execute", "raw execute"]
    rows = [
        Row(f"run -k python3 ({how})", "run python3", "jupyter run", 0.8),
        Row(f"run -k runtimelib-python ({how})", "run runtimelib-python", "jupyter run", 0.3),
        Row(
            f"execute {CELLS}-cell notebook ({how})",
            "execute",
            "jupyter execute",
            0.6,
            floor="raw execute",
        ),
    ]
    if script is not None:
        commands["--help"] = Command("--help", [script, "--help"], "usage")
        order.append("--help")
        rows.append(Row("--help (script)", "--help", "jupyter --help", 0.15, absolute=True))
    order += ["jupyter --help", "--help -m"]
    rows.append(Row("--help (python -m)", "--help -m", "jupyter --help", 0.15, absolute=True))
    on_path = shutil.which("runtimelib")
    if on_path is not None and on_path != script:
        commands["--help on PATH"] = Command("--help on PATH", [on_path, "--help"], "usage")
        order.append("--help on PATH")
        rows.append(
            Row("--help (first on PATH)", "--help on PATH", "jupyter --help", 0.15, absolute=True)
        )
    order += ["python -c pass", "jupyter execute --help"]
    return commands, order, rows


def _plain_env(folder: Path) -> tuple[str, str, str]:
    """A new virtual environment with runtimelib (this checkout), ipykernel and nbclient and
    nothing else; its runtimelib and jupyter scripts, and its python."""
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    python = folder / "bin" / "python"
    root = Path(__file__).resolve().parent.parent
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", str(root), "ipykernel", "nbclient"],
        check=True,
        capture_output=True,
    )
    # A kernelspec of this environment's python3, so its kernel is its own.
    subprocess.run(
        [str(python), "-m", "ipykernel", "install", "--sys-prefix"], check=True, capture_output=True
    )
    return str(folder / "bin" / "runtimelib"), str(folder / "bin" / "jupyter"), str(python)


def _shown(argv: list[str]) -> str:
    """A command line to read: the program's bare name, Python code kept in double quotes."""
    words = [Path(argv[0]).name]
    for arg in argv[1:]:
        plain = "'" in arg and not any(c in arg for c in '"$`\\!')
        words.append(f'"{arg}"' if plain else shlex.quote(arg))
    return " ".join(words)


def _time(command: Command, cwd: Path, env: dict[str, str]) -> float:
    """Wall time of one run; exits with the command's own output when it fails."""
    argv = shlex.join(command.argv)
    start = time.perf_counter()
    try:
        done = subprocess.run(
            command.argv,
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        sys.exit(f"bench/cli.py: {argv} did not finish in {COMMAND_TIMEOUT:.0f} s")
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        tail = "\n".join((done.stderr + done.stdout).strip().splitlines()[-20:])
        sys.exit(f"bench/cli.py: {argv} exited with {done.returncode}:\n{tail}")
    if command.expect is not None and command.expect not in done.stdout:
        sys.exit(f"bench/cli.py: {argv} did not print {command.expect!r}:\n{done.stdout}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="two rounds")
    parser.add_argument(
        "--plain-env",
        action="store_true",
        help="also time execute in a fresh environment without jupyter_server",
    )
    args = parser.parse_args()
    rounds = 2 if args.quick else args.rounds
    jupyter = _script("jupyter")
    if jupyter is None:
        sys.exit("bench/cli.py: no jupyter command (install jupyter_client and nbclient)")
    commands, order, rows = _plan(jupyter)
    with tempfile.TemporaryDirectory() as tmp:
        work, runtime = Path(tmp, "work"), Path(tmp, "runtime")
        work.mkdir()
        runtime.mkdir()
        # Both sides share one fresh byte-code cache, filled by the warm-up runs.
        cache_bytecode(Path(tmp, "pycache"))
        env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(runtime)}
        if args.plain_env:
            plain_ours, plain_jupyter, plain_python = _plain_env(Path(tmp, "plain-venv"))
            notebook = ["NB.ipynb", "-k", "python3"]
            commands["execute (plain env)"] = Command(
                "execute (plain env)", [plain_ours, "execute", *notebook]
            )
            commands["jupyter execute (plain env)"] = Command(
                "jupyter execute (plain env)",
                [plain_jupyter, "execute", "--kernel_name=python3", "NB.ipynb"],
            )
            commands["raw execute (plain env)"] = Command(
                "raw execute (plain env)", [plain_python, RAW_EXECUTE, "NB.ipynb"], f"{CELLS} cells"
            )
            order += ["execute (plain env)", "jupyter execute (plain env)"]
            order += ["raw execute (plain env)"]
            rows.insert(
                3,
                Row(
                    f"execute {CELLS}-cell, plain env",
                    "execute (plain env)",
                    "jupyter execute (plain env)",
                    0.6,
                    floor="raw execute (plain env)",
                ),
            )
        (work / "hello.py").write_text(HELLO + "\n")
        _write_notebook(work / "NB.ipynb")
        for command in commands.values():  # warm the file, byte-code and kernelspec caches
            _time(command, work, env)
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(rounds):
            for name in order:
                samples[name].append(_time(commands[name], work, env))
        left = sorted(path.name for path in runtime.iterdir())
    median = {name: statistics.median(values) for name, values in samples.items()}

    print(f"median of {rounds} rounds; ratio = runtimelib / anchor")
    print(f"runtimelib: {_script('runtimelib') or sys.executable + ' -m runtimelib'}")
    print(f"jupyter:    {jupyter}")
    print(f"python:     {sys.executable}")
    print(
        f"{'row':34}{'runtimelib':>12}  {'anchor':<16}{'':>9}{'ratio':>8}  {'target':<11}met"
        f"  {'x floor':>8}"
    )
    for row in rows:
        ours, theirs = median[row.ours], median[row.anchor]
        ratio = ours / theirs
        if row.absolute:
            target, met = f"< {row.target:.2f} s", ours < row.target
        else:
            target, met = f"<= {row.target:.1f}x", ratio <= row.target
        to_floor = f"{ours / median[row.floor]:7.2f}x" if row.floor else ""
        print(
            f"{row.label:34}{ours:>10.3f} s  {row.anchor:<16}{theirs:>7.3f} s{ratio:>7.2f}x"
            f"  {target:<11}{'yes' if met else 'no ':<3}  {to_floor}"
        )
    print("\nevery command (median, min, samples):")
    for name, command in commands.items():
        values = samples[name]
        print(
            f"  {median[name]:7.3f} s {min(values):7.3f} s {len(values):3}  {name:24}"
            f" {_shown(command.argv)}"
        )
    floor = median["python -c pass"]
    help_name = "--help" if "--help" in median else "--help -m"
    print(
        f"\nruntimelib {help_name} above the python -c pass floor: "
        f"{(median[help_name] - floor) * 1000:.1f} ms"
    )
    if left:
        print(f"left in JUPYTER_RUNTIME_DIR after the runs: {', '.join(left)}")


if __name__ == "__main__":
    main()
