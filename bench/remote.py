"""Kernels behind a Jupyter Server: runtimelib against jupyter_server, side by side in one run.

    python bench/remote.py [--rounds 5]

Codec: encode and decode of a small execute_request and of a 1 MB display_data (one 1 MB
buffer), in the v1 websocket format and in the legacy one (a text frame for the small message,
a binary frame for the large), by runtimelib's WebsocketCodec and by jupyter_server's own
functions doing the same job:

- v1 encode: serialize_msg_to_ws_v1 with the session's pack of the four dicts, as the server's
  write_stderr does (with buffers: the packed dicts and the buffers, the list form its
  _on_zmq_reply passes);
- v1 decode: deserialize_msg_from_ws_v1, then the session's unpack of the four JSON parts (a
  message is read only once its parts are);
- legacy: serialize_binary_message or json.dumps of the message dict (its legacy send path),
  deserialize_binary_message or json.loads (its legacy receive path).

Both sides use jupyter_client's Session as jupyter_server does (its default packer: orjson
when installed). Each round times every contender on the same messages, interleaved; the table
gives medians per message and the ratio theirs / ours (the speed-up).

Through a Jupyter Server: execute('pass') round trips of runtimelib's remote clients against a
direct ZeroMQ connection to the same kernel and a bare websocket loop; a 20,000-line flood.

Through a Kernel Gateway: execute('pass') round trips (to the reply and the idle status) to
one kernel by runtimelib's remote clients, blocking and asyncio, and by the clients other
projects offer for the same job: jupyter_server's GatewayKernelClient (the client a server
uses to reach a gateway) and, when it is installed, datalayer's jupyter-kernel-client. The
ratio is runtimelib / theirs, to be at most TARGET.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple
from unittest import mock

import anyio
import httpx
from anyio.from_thread import BlockingPortal, start_blocking_portal
from jupyter_client.jsonutil import json_default
from jupyter_client.session import Session as JCSession
from jupyter_server.services.kernels.connection.base import (
    deserialize_binary_message,
    deserialize_msg_from_ws_v1,
    serialize_binary_message,
    serialize_msg_to_ws_v1,
)

from _env import median_ms
from runtimelib.messages import DisplayData, ExecuteRequest
from runtimelib.protocol import Session
from runtimelib.protocol.websocket import V1_SUBPROTOCOL, WebsocketCodec

MEGABYTE = bytes(range(256)) * 4096
CODE = "print('hello, world')"
REQUEST = {
    "code": CODE,
    "silent": False,
    "store_history": True,
    "user_expressions": {},
    "allow_stdin": True,
    "stop_on_error": True,
}
FIGURE = {"data": {"text/plain": "<Figure>"}, "metadata": {}, "transient": {}}


class Row(NamedTuple):
    """One measured job: runtimelib's time and jupyter_server's, in the section's unit."""

    name: str
    ours: float
    theirs: float

    @property
    def ratio(self) -> float:
        """The speed-up: their time over ours."""
        return self.theirs / self.ours


def _repeat(fn: Callable[[], Any], count: int) -> Callable[[], None]:
    def batch() -> None:
        for _ in range(count):
            fn()  # results are dropped, as a websocket writer or reader loop would

    return batch


def _compare(rounds: int, count: int, jobs: dict[str, tuple[Callable[[], Any], ...]]) -> list[Row]:
    """Time ``(ours, theirs)`` of every job, interleaved in each round; µs per call."""
    samples: dict[str, tuple[list[float], list[float]]] = {n: ([], []) for n in jobs}
    for _ in range(rounds):
        for name, contenders in jobs.items():
            for fn, into in zip(contenders, samples[name], strict=True):
                into.append(median_ms(_repeat(fn, count), 3) * 1000 / count)
    return [
        Row(name, statistics.median(ours), statistics.median(theirs))
        for name, (ours, theirs) in samples.items()
    ]


def _their_v1_encode(jc: JCSession, msg: dict[str, Any], channel: str) -> Callable[[], bytes]:
    buffers = msg.get("buffers")
    if not buffers:
        return lambda: serialize_msg_to_ws_v1(msg, channel, jc.pack)
    keys = ("header", "parent_header", "metadata", "content")
    return lambda: serialize_msg_to_ws_v1([*(jc.pack(msg[k]) for k in keys), *buffers], channel)


def _their_v1_decode(jc: JCSession, frame: bytes) -> Callable[[], Any]:
    def decode() -> Any:
        channel, parts = deserialize_msg_from_ws_v1(frame)
        return channel, [jc.unpack(part) for part in parts[:4]], parts[4:]

    return decode


def codec_rows(rounds: int) -> list[Row]:
    """Encode and decode one message, both formats, small and 1 MB."""
    session = Session()
    v1 = WebsocketCodec(session, V1_SUBPROTOCOL)
    legacy = WebsocketCodec(session, None)
    jc = JCSession()
    request = session.message(ExecuteRequest(code=CODE))
    figure = session.message(DisplayData(data={"text/plain": "<Figure>"}), buffers=[MEGABYTE])
    their_request = {**jc.msg("execute_request", REQUEST), "buffers": [], "channel": "shell"}
    their_figure = {**jc.msg("display_data", FIGURE), "buffers": [MEGABYTE], "channel": "iopub"}

    rows = []
    for size, count, ours, theirs in (
        ("small", 2000, request, their_request),
        ("1 MB", 20, figure, their_figure),
    ):
        channel = theirs["channel"]
        v1_ours, v1_theirs = v1.encode(ours), _their_v1_encode(jc, theirs, channel)()
        legacy_ours = legacy.encode(ours)
        # The server's legacy paths: a binary frame when there are buffers, else JSON text.
        if theirs["buffers"]:
            legacy_dump: Callable[[Any], Any] = serialize_binary_message
            legacy_load: Callable[[Any], Any] = deserialize_binary_message
        else:
            legacy_dump = functools.partial(json.dumps, default=json_default)
            legacy_load = json.loads
        legacy_theirs = legacy_dump(theirs)
        # Each side reads the other's frames: both are doing the same job.
        for frame, codec in ((v1_theirs, v1), (legacy_theirs, legacy)):
            assert codec.decode(frame).msg_id == theirs["header"]["msg_id"]
        assert deserialize_msg_from_ws_v1(v1_ours)[0] == channel
        assert legacy_load(legacy_ours)["channel"] == channel
        kind = "binary" if isinstance(legacy_ours, bytes) else "text"
        jobs: dict[str, tuple[Callable[[], Any], ...]] = {
            f"v1 encode {size}": (
                lambda m=ours: v1.encode(m),
                _their_v1_encode(jc, theirs, channel),
            ),
            f"v1 decode {size}": (
                lambda f=v1_ours: v1.decode(f),
                _their_v1_decode(jc, v1_theirs),
            ),
            f"legacy encode {size} ({kind})": (
                lambda m=ours: legacy.encode(m),
                lambda m=theirs, dump=legacy_dump: dump(m),
            ),
            f"legacy decode {size} ({kind})": (
                lambda f=legacy_ours: legacy.decode(f),
                lambda f=legacy_theirs, load=legacy_load: load(f),
            ),
        }
        rows.extend(_compare(rounds, count, jobs))
    return rows


# -- through a live Jupyter Server -----------------------------------------------------------

FLOOD = "for i in range(20000):\n    print(i)"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def _server(kind: str, where: str) -> Iterator[tuple[str, str, str]]:
    """A ``jupyter_server`` (its iopub rate limit off) or a ``kernel_gateway`` (its token in
    KG_AUTH_TOKEN) on 127.0.0.1 and a free port; its URL, token and runtime dir. Leaving
    stops it with SIGTERM, on which both shut their kernels down."""
    token = secrets.token_hex(16)
    port = _free_port()
    runtime = os.path.join(where, "runtime")
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=runtime, IPYTHONDIR=os.path.join(where, "ipy"))
    if kind == "jupyter_server":
        command = [
            "jupyter_server", "--no-browser", "--allow-root",
            "--ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={where}",
            "--ZMQChannelsWebsocketConnection.limit_rate=False",
        ]  # fmt: skip
    elif kind == "kernel_gateway":
        command = [
            "kernel_gateway", "--KernelGatewayApp.ip=127.0.0.1",
            f"--KernelGatewayApp.port={port}", "--KernelGatewayApp.port_retries=0",
        ]  # fmt: skip
        env["KG_AUTH_TOKEN"] = token
    else:
        raise ValueError(kind)
    server = subprocess.Popen(
        [sys.executable, "-m", *command], cwd=where, env=env,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            if server.poll() is not None:
                raise RuntimeError(f"{kind} exited with status {server.returncode}")
            try:
                httpx.get(f"{url}/api/kernelspecs", headers={"Authorization": f"token {token}"})
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield url, token, runtime
    finally:
        server.terminate()
        server.wait(30)


def _raw_websocket_execute(url: str, token: str, kernel_id: str) -> tuple[Callable[[], Any], Any]:
    """The floor of a websocket client: websocket-client sending a prepared legacy frame and
    reading JSON until the reply and the idle status, acknowledging each read at once."""
    import websocket  # websocket-client, installed with jupyter_server

    ws = websocket.create_connection(
        f"ws://{url.split('://', 1)[1]}/api/kernels/{kernel_id}/channels?session_id=raw",
        header={"Authorization": f"token {token}"},
    )
    quickack = getattr(socket, "TCP_QUICKACK", None)

    def execute() -> None:
        msg_id = secrets.token_hex(8)
        header = {"msg_id": msg_id, "msg_type": "execute_request", "session": "raw",
                  "username": "", "date": "2026-01-01T00:00:00Z", "version": "5.3"}  # fmt: skip
        frame = {"header": header, "parent_header": {}, "metadata": {}, "channel": "shell",
                 "content": {**REQUEST, "code": "pass", "allow_stdin": False}}  # fmt: skip
        ws.send(json.dumps(frame))
        reply = idle = False
        while not (reply and idle):
            message = json.loads(ws.recv())
            if quickack is not None:
                ws.sock.setsockopt(socket.IPPROTO_TCP, quickack, 1)
            if message["parent_header"].get("msg_id") != msg_id:
                continue
            reply = reply or message["msg_type"] == "execute_reply"
            idle = idle or message["content"].get("execution_state") == "idle"

    return execute, ws


def server_rows(rounds: int) -> list[Row]:
    """execute('pass') round trips through one Jupyter Server, against a direct ZeroMQ
    connection to the same kernel and a bare websocket loop; a 20,000-line flood."""
    from runtimelib import ConnectionInfo, KernelClient
    from runtimelib.remote import AsyncRemoteKernelManager, RemoteKernelManager

    rows: list[Row] = []
    with (
        tempfile.TemporaryDirectory() as where,
        _server("jupyter_server", where) as (url, token, runtime),
        RemoteKernelManager("python3", url, token) as km,
    ):
        assert km.kernel_id is not None
        info = ConnectionInfo.from_file(os.path.join(runtime, f"kernel-{km.kernel_id}.json"))
        legacy = RemoteKernelManager.attach(km.kernel_id, url, token, legacy=True)
        legacy.start()
        raw, raw_ws = _raw_websocket_execute(url, token, km.kernel_id)
        direct = KernelClient(info)
        v1 = km.client()
        old = legacy.client()
        with direct, v1, old:
            count = 30
            contenders: dict[str, Callable[[], Any]] = {
                "websocket v1, blocking": lambda: v1.execute("pass"),
                "websocket legacy, blocking": lambda: old.execute("pass"),
                "direct ZeroMQ, blocking": lambda: direct.execute("pass"),
                "bare websocket loop": raw,
            }
            samples: dict[str, list[float]] = {name: [] for name in contenders}
            for _ in range(rounds):
                for name, fn in contenders.items():
                    samples[name].append(median_ms(fn, count))
            medians = {name: statistics.median(v) for name, v in samples.items()}
            floor = medians["direct ZeroMQ, blocking"]
            rows += [Row(f"execute: {name}", ms, floor) for name, ms in medians.items()]

            async def async_round() -> float:
                kernel_id = str(km.kernel_id)
                attached = AsyncRemoteKernelManager.attach(kernel_id, url, token)
                async with attached as am, am.client() as client:
                    for _ in range(5):
                        await client.execute("pass")
                    times = []
                    for _ in range(count):
                        t0 = time.perf_counter()
                        await client.execute("pass")
                        times.append((time.perf_counter() - t0) * 1000)
                    return statistics.median(times)

            ms = statistics.median(anyio.run(async_round) for _ in range(rounds))
            rows.append(Row("execute: websocket v1, asyncio", ms, floor))

            lines = []
            flood_ws, flood_zmq = [], []
            for _ in range(rounds):
                t0 = time.perf_counter()
                lines.append(len(v1.execute(FLOOD, timeout=300).stdout.splitlines()))
                flood_ws.append((time.perf_counter() - t0) * 1000)
                t0 = time.perf_counter()
                direct.execute(FLOOD, timeout=300)
                flood_zmq.append((time.perf_counter() - t0) * 1000)
            complete = sum(n == 20000 for n in lines)
            rows.append(
                Row(
                    f"flood 20,000 lines ({complete}/{rounds} complete)",
                    statistics.median(flood_ws),
                    statistics.median(flood_zmq),
                )
            )
        raw_ws.close()
        legacy.close()
    return rows


def print_server_rows(title: str, rows: list[Row], rounds: int) -> None:
    """The live section: runtimelib over the server, against a direct ZeroMQ connection to
    the same kernel (ratio = through the server / direct)."""
    print(f"\n{title}, median of {rounds} rounds; ratio = this row / direct ZeroMQ")
    print(f"  {'':44} {'ms':>10} {'direct ms':>10} {'ratio':>8}")
    for row in rows:
        print(f"  {row.name:44} {row.ours:10.2f} {row.theirs:10.2f} {row.ours / row.theirs:7.2f}x")


# -- through a Kernel Gateway, against the clients other projects offer --------------------

#: The performance target: runtimelib's round trip over another project's client's, at most.
TARGET = 0.7


def _gateway_kernel_client(portal: BlockingPortal, url: str, token: str, kernel_id: str) -> Any:
    """jupyter_server's GatewayKernelClient on the kernel, its channels started in ``portal``.

    GatewayClient is configured as a server talking to a gateway is (its ``url`` and
    ``auth_token``; ``ws_url`` follows from the url). The client's start_channels opens its
    websocket with ``websocket.create_connection`` and no headers, so a gateway that wants a
    token refuses it (401): only while it connects, that call is given the headers
    GatewayClient.load_connection_args builds for every other request the server makes to
    the gateway. The messages then go the client's own way: JSON text frames written by its
    ChannelQueue.send, read by its router thread into one queue per channel.
    """
    import websocket
    from jupyter_server.gateway import managers
    from jupyter_server.gateway.gateway_client import GatewayClient

    gateway = GatewayClient.instance(url=url, auth_token=token)
    assert gateway.gateway_enabled
    assert gateway.ws_url == f"ws://{url.split('://', 1)[1]}"
    create = websocket.create_connection

    def with_headers(ws_url: str, **options: Any) -> Any:
        assert ws_url.startswith(gateway.ws_url)
        headers = gateway.load_connection_args()["headers"]
        return create(ws_url, header=headers, **options)

    client = managers.GatewayKernelClient(kernel_id, session=JCSession())
    with mock.patch.object(managers.websocket, "create_connection", with_headers):
        portal.call(client.start_channels)
    assert client.channel_socket.connected  # its websocket to the gateway is open
    return client


async def _their_execute(client: Any) -> None:
    """An execute('pass') round trip the way jupyter_client's async clients are driven: the
    request, then the shell channel until its reply, the iopub channel until its idle."""
    msg_id = client.execute("pass")
    while (await client.get_shell_msg(timeout=30))["parent_header"].get("msg_id") != msg_id:
        pass
    while True:
        msg = await client.get_iopub_msg(timeout=30)
        if (
            msg["parent_header"].get("msg_id") == msg_id
            and msg["msg_type"] == "status"
            and msg["content"]["execution_state"] == "idle"
        ):
            return


async def _amedian_ms(fn: Callable[[], Any], count: int) -> float:
    """median_ms of an async call, timed inside its event loop."""
    samples = []
    for _ in range(count):
        t0 = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


def gateway_rows(rounds: int) -> list[Row]:
    """execute('pass') round trips to one kernel on one Kernel Gateway: runtimelib's clients
    against jupyter_server's GatewayKernelClient and, when installed, datalayer's
    jupyter-kernel-client; a row per (ours, theirs) pair, ours / theirs the ratio."""
    from runtimelib.remote import AsyncRemoteKernelManager, RemoteKernelManager

    try:
        from jupyter_kernel_client import JupyterKernelClient
    except ImportError:
        JupyterKernelClient = None

    count = 30
    with contextlib.ExitStack() as stack:
        where = stack.enter_context(tempfile.TemporaryDirectory())
        url, token, _ = stack.enter_context(_server("kernel_gateway", where))
        km = stack.enter_context(RemoteKernelManager("python3", url, token))
        kernel_id = str(km.kernel_id)
        blocking = stack.enter_context(km.client())
        old = RemoteKernelManager.attach(kernel_id, url, token, legacy=True)
        stack.enter_context(old)
        legacy = stack.enter_context(old.client())
        # Each async client has an event loop of its own in a thread (a portal), as it would
        # in a program, so none runs its background tasks on another's loop; the round trips
        # are timed inside that loop, not across the hand-off between threads.
        ours_portal = stack.enter_context(start_blocking_portal("asyncio"))
        am = AsyncRemoteKernelManager.attach(kernel_id, url, token)
        stack.enter_context(ours_portal.wrap_async_context_manager(am))
        client = stack.enter_context(ours_portal.wrap_async_context_manager(am.client()))
        their_portal = stack.enter_context(start_blocking_portal("asyncio"))
        gateway_client = _gateway_kernel_client(their_portal, url, token, kernel_id)
        stack.callback(gateway_client.stop_channels)

        ours: dict[str, Callable[[int], float]] = {
            "runtimelib v1, blocking": lambda n: median_ms(lambda: blocking.execute("pass"), n),
            "runtimelib legacy, blocking": lambda n: median_ms(lambda: legacy.execute("pass"), n),
            "runtimelib v1, asyncio": lambda n: ours_portal.call(
                _amedian_ms, lambda: client.execute("pass"), n
            ),
        }
        theirs: dict[str, Callable[[int], float]] = {
            "GatewayKernelClient, asyncio": lambda n: their_portal.call(
                _amedian_ms, lambda: _their_execute(gateway_client), n
            ),
        }
        if JupyterKernelClient is not None:
            # Its requests carry "Authorization: Bearer", which a gateway refuses; given a
            # header of the gateway's scheme, it sends that and the token as a parameter.
            auth = {"Authorization": f"token {token}"}
            datalayer = JupyterKernelClient(
                server_url=url, token=token, kernel_id=kernel_id, headers=auth
            )
            datalayer.start()
            stack.callback(datalayer.stop, shutdown_kernel=False)
            theirs["jupyter-kernel-client, blocking"] = lambda n: median_ms(
                lambda: datalayer.execute("pass"), n
            )
        contenders = {**ours, **theirs}
        for run in contenders.values():
            run(10)  # warm-up: imports, first frames, the kernel's first executions
        samples: dict[str, list[float]] = {name: [] for name in contenders}
        for _ in range(rounds):
            for name, run in contenders.items():
                run(1)  # the other clients' iopub traffic, read before timing
                samples[name].append(run(count))
    medians = {name: statistics.median(v) for name, v in samples.items()}
    return [
        Row(f"{mine} / {their}", medians[mine], medians[their]) for their in theirs for mine in ours
    ]


def print_gateway_rows(title: str, rows: list[Row], rounds: int) -> None:
    """The gateway section: runtimelib's time, theirs, and runtimelib / theirs (target at
    most TARGET: lower is better, unlike the codec's speed-up)."""
    print(f"\n{title}, median of {rounds} rounds; ratio = runtimelib / theirs, target <= {TARGET}")
    print(f"  {'':62} {'ours ms':>8} {'theirs ms':>9} {'ratio':>7}")
    for row in rows:
        ratio = row.ours / row.theirs
        met = "met" if ratio <= TARGET else "MISSED"
        print(f"  {row.name:62} {row.ours:8.2f} {row.theirs:9.2f} {ratio:6.2f}x {met}")


#: The sections of the report, in order: a title and a function of the rounds giving rows.
SECTIONS: list[tuple[str, Callable[[int], list[Row]]]] = [
    ("websocket codec (µs per message)", codec_rows),
]


def print_rows(title: str, rows: list[Row], rounds: int) -> None:
    """One section's table: ours, theirs, and the ratio theirs / ours."""
    print(f"\n{title}, median of {rounds} rounds; ratio = jupyter_server / runtimelib")
    print(f"  {'':32} {'runtimelib':>12} {'jupyter_server':>15} {'ratio':>8}")
    for row in rows:
        print(f"  {row.name:32} {row.ours:12.2f} {row.theirs:15.2f} {row.ratio:7.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--codec-only", action="store_true", help="skip the live server")
    args = parser.parse_args()
    for title, section in SECTIONS:
        print_rows(title, section(args.rounds), args.rounds)
    if not args.codec_only:
        title = "through one Jupyter Server (ms per execution)"
        print_server_rows(title, server_rows(args.rounds), args.rounds)
        title = "through one Kernel Gateway (ms per execution)"
        print_gateway_rows(title, gateway_rows(args.rounds), args.rounds)


if __name__ == "__main__":
    main()
