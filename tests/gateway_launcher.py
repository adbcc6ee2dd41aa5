"""Starts an ipykernel for Enterprise Gateway's distributed process proxy, in the gateway's own
environment, and tells the gateway where the kernel listens.

A kernelspec on a remote process proxy names a launcher, not the kernel: the gateway passes it
``{kernel_id} {response_address} {public_key}`` and waits for a version 1 answer on the response
address (its ``ResponseManager``): base64 of ``{"version": 1, "key", "conn_info"}``, where
``conn_info`` is the kernel's connection info encrypted with a fresh AES key (ECB, PKCS#7
padding) and ``key`` that AES key encrypted with the gateway's RSA public key (PKCS#1 v1.5).
The gateway's PyPI wheel ships no launcher, hence this one. It sends no communication port:
the gateway then signals the process it started, which is the kernel itself.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import sys

from Cryptodome.Cipher import AES, PKCS1_v1_5
from Cryptodome.PublicKey import RSA
from Cryptodome.Random import get_random_bytes
from Cryptodome.Util.Padding import pad
from ipykernel.kernelapp import IPKernelApp


def answer(kernel_id: str, public_key: str, app: IPKernelApp) -> bytes:
    """The gateway's expected answer: where the initialized kernel ``app`` listens."""
    info = {
        "kernel_id": kernel_id,
        "ip": app.ip,
        "transport": app.transport,
        "shell_port": app.shell_port,
        "iopub_port": app.iopub_port,
        "stdin_port": app.stdin_port,
        "hb_port": app.hb_port,
        "control_port": app.control_port,
        "key": app.session.key.decode(),
        "signature_scheme": app.session.signature_scheme,
    }
    aes_key = get_random_bytes(16)
    conn_info = AES.new(aes_key, AES.MODE_ECB).encrypt(pad(json.dumps(info).encode(), 16))
    pem = f"-----BEGIN PUBLIC KEY-----\n{public_key}\n-----END PUBLIC KEY-----"
    key = PKCS1_v1_5.new(RSA.import_key(pem)).encrypt(aes_key)
    payload = {
        "version": 1,
        "key": base64.b64encode(key).decode(),
        "conn_info": base64.b64encode(conn_info).decode(),
    }
    return base64.b64encode(json.dumps(payload).encode())


def main() -> None:
    kernel_id, response_address, public_key = sys.argv[1:4]
    # The kernelspec's env names the directory (the gateway passes a kernel nothing else of
    # its own environment).
    where = os.environ["RUNTIMELIB_LAUNCHER_DIR"]
    connection_file = os.path.join(where, f"kernel-{kernel_id}.json")
    app = IPKernelApp.instance()
    # Bound to its ports before the answer goes out, so the gateway never connects too early.
    app.initialize(["-f", connection_file])
    host, port = response_address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as gateway:
        gateway.sendall(answer(kernel_id, public_key, app))
    app.start()


if __name__ == "__main__":
    main()
