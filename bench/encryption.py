"""CurveZMQ against plain transport, side by side in one run, with jupyter_client alongside.

    python bench/encryption.py [--rounds 3] [--quick]

For runtimelib-python and ipykernel (python3), each started plain and encrypted (the
managers' transport_encryption "disabled" and "required"): kernel_info and execute('pass')
round trips (medians of 200, ms) and 20,000 printed lines to idle (s, and the lines that
arrived), with runtimelib's blocking client and with jupyter_client's (its own manager, with
the same policy); and the floor, pyzmq alone (a round trip, and the flood's bytes one way),
which shows what CurveZMQ itself costs in this libzmq. Rounds alternate plain and encrypted;
printed: medians, and encrypted / plain for each.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from typing import Any

from jupyter_client.manager import KernelManager as JupyterKernelManager

from _env import cache_bytecode, median_ms
from runtimelib import KernelManager

FLOOD = "for i in range(20000): print(i)"
POLICIES = ("disabled", "required")


def _ours(kernel: str, policy: str, count: int) -> dict[str, float]:
    manager = KernelManager(kernel, transport_encryption=policy, output="devnull")  # type: ignore[arg-type]
    with manager as km, km.client() as kc:
        rows = {
            "kernel_info ms": median_ms(kc.kernel_info, count),
            "execute ms": median_ms(lambda: kc.execute("pass"), count),
        }
        t0 = time.perf_counter()
        lines = kc.execute(FLOOD, timeout=120).stdout.count("\n")
        rows["flood s"] = time.perf_counter() - t0
        rows["flood lines"] = lines
        return rows


def _theirs(kernel: str, policy: str, count: int) -> dict[str, float]:
    km = JupyterKernelManager(kernel_name=kernel, transport_encryption=policy)
    km.start_kernel(stdout=open(os.devnull, "w"), stderr=open(os.devnull, "w"))  # noqa: SIM115
    kc = km.blocking_client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        rows = {
            "kernel_info ms": median_ms(lambda: kc.kernel_info(reply=True), count),
            "execute ms": median_ms(
                lambda: kc.execute_interactive("pass", output_hook=_drop), count
            ),
        }
        lines = 0

        def count_lines(message: dict[str, Any]) -> None:
            nonlocal lines
            if message["msg_type"] == "stream":
                lines += message["content"]["text"].count("\n")

        t0 = time.perf_counter()
        kc.execute_interactive(FLOOD, timeout=120, output_hook=count_lines)
        rows["flood s"] = time.perf_counter() - t0
        rows["flood lines"] = lines
        return rows
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def _limit(kernel: str, policy: str, count: int) -> dict[str, float]:
    """The floor: pyzmq alone, a DEALER and a ROUTER on loopback tcp, plain or CurveZMQ. A
    round trip of a request-sized message, and the flood's bytes as our kernel sends them
    (two stream messages of 55 KB), one way."""
    import zmq

    context = zmq.Context()
    server, client = context.socket(zmq.ROUTER), context.socket(zmq.DEALER)
    if policy == "required":
        server_public, server_secret = zmq.curve_keypair()
        server.curve_secretkey, server.curve_publickey = server_secret, server_public
        server.curve_server = True
        client.curve_publickey, client.curve_secretkey = zmq.curve_keypair()
        client.curve_serverkey = server_public
    port = server.bind_to_random_port("tcp://127.0.0.1")
    client.connect(f"tcp://127.0.0.1:{port}")
    request, chunk = b"x" * 600, b"1234\n" * 11_000
    try:
        client.send(request)
        identity, _ = server.recv_multipart()  # connected (and the handshake done)

        def round_trip() -> None:
            client.send(request)
            server.send_multipart(server.recv_multipart())
            client.recv()

        def flood() -> None:
            for _ in range(2):
                server.send_multipart([identity, chunk])
            for _ in range(2):
                client.recv()

        return {
            "round trip ms": median_ms(round_trip, count),
            "flood ms": median_ms(flood, 20),
        }
    finally:
        client.close(0)
        server.close(0)
        context.term()


def _drop(message: dict[str, Any]) -> None:
    pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one short round")
    args = parser.parse_args()
    rounds, count = (1, 20) if args.quick else (args.rounds, 200)
    with tempfile.TemporaryDirectory() as runtime:
        os.environ["JUPYTER_RUNTIME_DIR"] = runtime
        cache_bytecode(os.path.join(runtime, "pycache"))
        print(f"median of {rounds} rounds; ratio = encrypted / plain")
        runs = [
            (kernel, who, measure)
            for kernel in ("runtimelib-python", "python3")
            for who, measure in (("runtimelib", _ours), ("jupyter_client", _theirs))
        ]
        for kernel, who, measure in [("-", "pyzmq (limit)", _limit), *runs]:
            samples: dict[str, dict[str, list[float]]] = {p: {} for p in POLICIES}
            for _ in range(rounds):
                for policy in POLICIES:
                    for row, value in measure(kernel, policy, count).items():
                        samples[policy].setdefault(row, []).append(value)
            for row in samples["disabled"]:
                plain = statistics.median(samples["disabled"][row])
                secret = statistics.median(samples["required"][row])
                print(
                    f"  {kernel:17} {who:14} {row:15} plain {plain:9.3f}"
                    f"  encrypted {secret:9.3f}  {secret / plain:5.2f}x"
                )


if __name__ == "__main__":
    main()
