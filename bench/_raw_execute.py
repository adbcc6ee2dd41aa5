"""The least a notebook runner can do: the floor for the execute rows of bench/cli.py.

    python bench/_raw_execute.py NB.ipynb

Only the standard library and pyzmq, no error handling: start ipykernel with a connection
file, wait until its iopub hears us, run every code cell (its reply and its idle status),
ask the kernel to shut down and wait for the process to end. Outputs are counted, not kept.
What is left of a runner's time above this is its own.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import tempfile
import uuid
from datetime import datetime, timezone
from typing import Any

import zmq

CHANNELS = ("shell", "iopub", "stdin", "control", "hb")


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


class Wire:
    """Signs, sends and reads messages of one session."""

    def __init__(self, key: bytes) -> None:
        self.key = key
        self.session = uuid.uuid4().hex

    def send(self, sock: zmq.Socket[Any], msg_type: str, content: dict[str, Any]) -> str:
        msg_id = uuid.uuid4().hex
        header = {
            "msg_id": msg_id, "msg_type": msg_type, "session": self.session, "username": "raw",
            "date": datetime.now(timezone.utc).isoformat(), "version": "5.3",
        }  # fmt: skip
        frames = [json.dumps(part).encode() for part in (header, {}, {}, content)]
        signature = hmac.new(self.key, b"".join(frames), hashlib.sha256).hexdigest().encode()
        sock.send_multipart([b"<IDS|MSG>", signature, *frames])
        return msg_id

    def recv(self, sock: zmq.Socket[Any]) -> dict[str, Any]:
        frames = sock.recv_multipart()
        at = frames.index(b"<IDS|MSG>")
        header, parent, _, content = (json.loads(f) for f in frames[at + 2 : at + 6])
        return {"header": header, "parent": parent, "content": content}


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as file:
        cells = [c for c in json.load(file)["cells"] if c["cell_type"] == "code"]
    key = uuid.uuid4().hex.encode()
    ports = dict(zip(CHANNELS, _free_ports(len(CHANNELS)), strict=True))
    info: dict[str, Any] = {f"{name}_port": port for name, port in ports.items()}
    info.update(ip="127.0.0.1", transport="tcp", key=key.decode(), signature_scheme="hmac-sha256")
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "kernel.json")
        with open(path, "w", encoding="utf-8") as file:
            json.dump(info, file)
        kernel = subprocess.Popen(
            [sys.executable, "-m", "ipykernel_launcher", "-f", path],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        context = zmq.Context()
        shell = context.socket(zmq.DEALER)
        shell.connect(f"tcp://127.0.0.1:{ports['shell']}")
        iopub = context.socket(zmq.SUB)
        iopub.setsockopt(zmq.SUBSCRIBE, b"")
        iopub.connect(f"tcp://127.0.0.1:{ports['iopub']}")
        wire = Wire(key)
        # Ready once a kernel_info has been answered and iopub carries its messages.
        while True:
            wire.send(shell, "kernel_info_request", {})
            if shell.poll(1000):
                wire.recv(shell)
                if iopub.poll(200):
                    break
        while iopub.poll(50):
            iopub.recv_multipart()
        outputs = 0
        for cell in cells:
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            msg_id = wire.send(shell, "execute_request", {"code": source, "silent": False})
            wire.recv(shell)
            while True:
                message = wire.recv(iopub)
                if message["parent"].get("msg_id") != msg_id:
                    continue
                kind = message["header"]["msg_type"]
                outputs += kind in ("stream", "display_data", "execute_result", "error")
                if kind == "status" and message["content"]["execution_state"] == "idle":
                    break
        control = context.socket(zmq.DEALER)
        control.connect(f"tcp://127.0.0.1:{ports['control']}")
        wire.send(control, "shutdown_request", {"restart": False})
        wire.recv(control)
        kernel.wait()
        context.destroy(linger=0)
    print(f"{len(cells)} cells, {outputs} outputs")


if __name__ == "__main__":
    main()
