"""Import hygiene: a light ``import runtimelib``, and a protocol core that needs no zmq."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def _run(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_import_runtimelib_pulls_in_nothing_heavy() -> None:
    out = _run("import sys, json, runtimelib; print(json.dumps(sorted(sys.modules)))")
    loaded = set(json.loads(out))
    for heavy in ("zmq", "anyio", "jupyter_core", "msgspec", "asyncio", "runtimelib.messages"):
        assert heavy not in loaded, f"import runtimelib loads {heavy}"


@pytest.mark.parametrize(
    "module",
    ["runtimelib.protocol", "runtimelib.messages", "runtimelib.media", "runtimelib.connection"],
)
def test_core_modules_work_without_zmq(module: str) -> None:
    code = (
        "import sys\n"
        "sys.modules['zmq'] = None  # any import of zmq now fails\n"
        f"import {module}\n"
        "from runtimelib.protocol import Session\n"
        "from runtimelib.messages import ExecuteRequest, Message\n"
        "s = Session(b'k')\n"
        "m = s.deserialize(s.serialize(Message.new(ExecuteRequest(code='1'))))\n"
        "assert m.content.code == '1'\n"
        "print('zmq' in sys.modules and sys.modules['zmq'] is not None)\n"
    )
    assert _run(code).strip() == "False"


def test_lazy_names_resolve() -> None:
    out = _run(
        "import runtimelib\n"
        "print(runtimelib.Session.__module__, runtimelib.ConnectionInfo.__module__,"
        " runtimelib.MimeBundle.__module__, runtimelib.SignatureError.__module__)"
    )
    assert out.split() == [
        "runtimelib.protocol.session",
        "runtimelib.connection",
        "runtimelib.media",
        "runtimelib.errors",
    ]
