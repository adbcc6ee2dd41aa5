"""Remote kernels when things go wrong: a dropped websocket, a server that dies, a wrong
token, a kernel shut down by another client, the server's rate limit, and a fake server
sending frames that are not messages. Real Jupyter Servers throughout, except for the fake.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import pytest

from runtimelib import AsyncKernelClient, KernelClient
from runtimelib.client import Output
from runtimelib.errors import (
    KernelDiedError,
    KernelTimeoutError,
    ServerAuthError,
    ServerConflictError,
    ServerError,
    ServerNotFoundError,
    ServerUnavailableError,
    TransportError,
    status_error,
)
from runtimelib.messages import Stream
from runtimelib.protocol import Session
from runtimelib.protocol.websocket import V1_SUBPROTOCOL
from runtimelib.remote import (
    AsyncJupyterServer,
    AsyncRemoteKernelManager,
    JupyterServer,
    RemoteKernelManager,
)
from runtimelib.transports.websocket import Endpoint, WebsocketAsyncTransport, WebsocketTransport

from .proxies import CuttingProxy
from .remote_checks import SlowLaunchServer
from .servers import Server, running_server

pytestmark = pytest.mark.kernel

#: Prints a numbered line every 250 ms for about three seconds.
LINES = "import time\nfor i in range(12):\n    print(f'line {i}', flush=True)\n    time.sleep(0.25)"
EXPECTED = "".join(f"line {i}\n" for i in range(12))


def cut_after_line(proxy: CuttingProxy, n: int = 2) -> Callable[[Output], None]:
    """An output callback that drops the websocket just after line ``n`` arrives.

    Jupyter Server loses what the kernel sends in the moment between a websocket closing
    and its close being handled (its write raises WebSocketClosedError, and the message
    is gone before buffering starts): no client can get that back. The drop comes right
    after a line, so the next one is sent while the server buffers for the client.
    """

    def on_output(output: Output) -> None:
        if isinstance(output, Stream) and output.text == f"line {n}\n":
            proxy.cut()

    return on_output


FAST = {"reconnect_timeout": 20.0, "poll_interval": 0.5}


def _through(client: object, proxy: CuttingProxy) -> None:
    """Send a client's websocket through the proxy (its REST calls go straight)."""
    transport = client.transport  # type: ignore[attr-defined]
    transport.endpoint = dataclasses.replace(transport.endpoint, port=proxy.port)


@pytest.fixture
def proxy(remote_server: Server) -> Iterator[CuttingProxy]:
    port = int(remote_server.url.rsplit(":", 1)[1])
    cutter = CuttingProxy(port)
    yield cutter
    cutter.close()


# -- a dropped websocket ----------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("legacy", [False, True], ids=["v1", "legacy"])
async def test_every_line_arrives_once_across_a_dropped_websocket(
    remote_server: Server, proxy: CuttingProxy, legacy: bool
) -> None:
    url, token = remote_server.url, remote_server.token
    async with AsyncRemoteKernelManager("python3", url, token, legacy=legacy, **FAST) as km:
        client = km.client()
        _through(client, proxy)
        async with client:
            result = await client.execute(LINES, timeout=60, on_output=cut_after_line(proxy))
            assert result.stdout == EXPECTED
            assert client.transport.reconnects == 1  # type: ignore[attr-defined]
            assert proxy.connections == 2
            assert result.missing_output is None
            # The client goes on as before.
            again = await client.execute("print('after')", timeout=30)
            assert again.stdout == "after\n"


def test_every_line_arrives_once_across_a_dropped_websocket_blocking(
    remote_server: Server, proxy: CuttingProxy
) -> None:
    with RemoteKernelManager("python3", remote_server.url, remote_server.token, **FAST) as km:
        client = km.client()
        _through(client, proxy)
        with client:
            result = client.execute(LINES, timeout=60, on_output=cut_after_line(proxy))
            assert result.stdout == EXPECTED
            assert client.transport.reconnects == 1  # type: ignore[attr-defined]
            assert result.missing_output is None
            assert client.execute("print('after')", timeout=30).stdout == "after\n"


@pytest.mark.anyio
async def test_a_request_made_while_the_websocket_is_down_is_sent_once_it_is_back(
    remote_server: Server, proxy: CuttingProxy
) -> None:
    url, token = remote_server.url, remote_server.token
    async with AsyncRemoteKernelManager("python3", url, token, **FAST) as km:
        client = km.client()
        _through(client, proxy)
        async with client:
            proxy.refusing = True
            proxy.cut()
            transport = client.transport
            with anyio.fail_after(10):
                while transport._ws.open:  # type: ignore[attr-defined]
                    await anyio.sleep(0.01)

            async def back_soon() -> None:
                await anyio.sleep(1.0)
                proxy.refusing = False

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(back_soon)
                result = await client.execute("print(6 * 7)", timeout=30)
            assert result.stdout == "42\n"
            assert transport.reconnects == 1  # type: ignore[attr-defined]


@pytest.mark.anyio
async def test_requests_lost_with_the_websocket_are_sent_again_or_fail_at_once(
    remote_server: Server, proxy: CuttingProxy
) -> None:
    """Requests written into a connection that is already dead (the server never reads
    them): a kernel_info is sent again once the client is back; an execute, which must not
    run twice, fails at once when the kernel is idle, instead of waiting for its timeout."""
    url, token = remote_server.url, remote_server.token
    async with AsyncRemoteKernelManager("python3", url, token, **FAST) as km:
        client = km.client()
        _through(client, proxy)
        async with client:
            proxy.cut()
            started = time.monotonic()
            info = await client.kernel_info(timeout=20)
            assert info.implementation == "ipython"
            assert time.monotonic() - started < 10
            # The same again for an execute.
            proxy.cut()
            started = time.monotonic()
            outcome: object
            try:
                outcome = (await client.execute("print(1)", timeout=20)).stdout
            except TransportError as exc:
                outcome = exc
            # Lost, and said so; or the drop was seen before it was written, and it waited.
            assert outcome == "1\n" or "never reached the kernel" in str(outcome)
            assert time.monotonic() - started < 10
            assert client.transport.reconnects == 2  # type: ignore[attr-defined]


def test_a_request_lost_with_the_websocket_is_sent_again_blocking(
    remote_server: Server, proxy: CuttingProxy
) -> None:
    with RemoteKernelManager("python3", remote_server.url, remote_server.token, **FAST) as km:
        client = km.client()
        _through(client, proxy)
        with client:
            proxy.cut()
            started = time.monotonic()
            assert client.kernel_info(timeout=20).implementation == "ipython"
            assert time.monotonic() - started < 10
            assert client.transport.reconnects == 1  # type: ignore[attr-defined]


@pytest.mark.anyio
async def test_output_that_another_client_may_have_taken_is_reported_missing(
    remote_server: Server, proxy: CuttingProxy
) -> None:
    """While another websocket is connected to the kernel, the server keeps nothing for a
    client that dropped: the result says its output may be missing."""
    url, token = remote_server.url, remote_server.token
    async with AsyncRemoteKernelManager("python3", url, token, **FAST) as km:
        other = km.client()
        client = km.client()
        _through(client, proxy)
        async with other, client:
            result = await client.execute(LINES, timeout=60, on_output=cut_after_line(proxy))
            assert result.missing_output is not None
            assert "another client" in result.missing_output
            # What did arrive came once, in order.
            lines = result.stdout.splitlines()
            assert lines == sorted(set(lines), key=lambda line: int(line.split()[1]))


# -- the server or the kernel goes away -------------------------------------------------------


@pytest.mark.anyio
async def test_a_server_killed_mid_execution_fails_the_request_in_bounded_time(
    tmp_path: Path,
) -> None:
    with running_server("jupyter_server", tmp_path) as server:
        async with AsyncRemoteKernelManager(
            "python3", server.url, server.token, reconnect_timeout=3.0, poll_interval=0.5
        ) as km:
            async with km.client() as client:
                pid = int((await client.execute("import os; print(os.getpid())")).stdout)
                started = time.monotonic()
                async with anyio.create_task_group() as tasks:

                    async def kill_soon() -> None:
                        await anyio.sleep(0.5)
                        os.kill(server.pid, signal.SIGKILL)

                    tasks.start_soon(kill_soon)
                    with pytest.raises((TransportError, KernelDiedError)):
                        await client.execute("import time; time.sleep(60)", timeout=60)
                elapsed = time.monotonic() - started
                assert elapsed < 15, f"the request took {elapsed:.1f} s to fail"
                # Later requests fail at once.
                with pytest.raises((TransportError, KernelDiedError)):
                    await client.execute("1", timeout=5)
            km.owns_kernel = False  # the server is gone: nothing to shut down
        # The kernel notices its parent is gone and exits (ipykernel's parent poller).
        _wait_gone(pid)


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    raise AssertionError(f"the kernel {pid} outlived its server")


@pytest.mark.parametrize("mode", ["async", "blocking"])
def test_a_kernel_shut_down_by_another_client_fails_pending_requests(
    remote_server: Server, mode: str
) -> None:
    url, token = remote_server.url, remote_server.token
    if mode == "async":

        async def main() -> float:
            async with (
                AsyncRemoteKernelManager("python3", url, token, **FAST) as km,
                km.client() as client,
                AsyncJupyterServer(url, token) as other,
                anyio.create_task_group() as tasks,
            ):

                async def delete_soon() -> None:
                    await anyio.sleep(0.5)
                    assert km.kernel_id is not None
                    await other.shutdown_kernel(km.kernel_id)

                tasks.start_soon(delete_soon)
                started = time.monotonic()
                with pytest.raises(KernelDiedError):
                    await client.execute("import time; time.sleep(60)", timeout=60)
                return time.monotonic() - started
            raise AssertionError("unreachable")

        elapsed = anyio.run(main)
    else:
        with (
            RemoteKernelManager("python3", url, token, **FAST) as km,
            km.client() as client,
            JupyterServer(url, token) as other,
        ):
            assert km.kernel_id is not None
            threading.Timer(0.5, other.shutdown_kernel, args=(km.kernel_id,)).start()
            started = time.monotonic()
            with pytest.raises(KernelDiedError):
                client.execute("import time; time.sleep(60)", timeout=60)
            elapsed = time.monotonic() - started
    assert elapsed < 20, f"the request took {elapsed:.1f} s to fail"


@pytest.mark.parametrize("legacy", [False, True], ids=["v1", "legacy"])
def test_a_kernel_the_server_restarts_after_it_died_fails_pending_requests(
    remote_server: Server, legacy: bool
) -> None:
    """The kernel process dies: the server's restarter starts a new one and says
    ``restarting`` on the websocket; the pending request fails with KernelDiedError at once,
    and the next one runs on the new kernel."""
    url, token = remote_server.url, remote_server.token
    with (
        RemoteKernelManager("python3", url, token, legacy=legacy, poll_interval=60.0) as km,
        km.client() as client,
    ):
        pid = int(client.execute("import os; print(os.getpid())", timeout=30).stdout)
        threading.Timer(0.5, os.kill, args=(pid, signal.SIGKILL)).start()
        started = time.monotonic()
        with pytest.raises(KernelDiedError, match="the server restarted it"):
            client.execute("import time; time.sleep(60)", timeout=60)
        assert time.monotonic() - started < 20
        again = client.execute("import os; print(os.getpid())", timeout=30)
        assert again.stdout.strip().isdigit()
        assert int(again.stdout) != pid


def test_a_kernel_restarted_by_another_client_takes_requests_again(
    remote_server: Server,
) -> None:
    url, token = remote_server.url, remote_server.token
    with (
        RemoteKernelManager("python3", url, token, **FAST) as km,
        km.client() as client,
        JupyterServer(url, token) as other,
    ):
        client.execute("x = 1")
        assert km.kernel_id is not None
        other.restart_kernel(km.kernel_id)
        result = client.execute("print('x' in dir())", timeout=30)
        assert result.stdout == "False\n"


# -- authentication and unknown things --------------------------------------------------------


def test_a_wrong_token_is_an_auth_error_at_once(remote_server: Server) -> None:
    before = remote_server.log.read_text(errors="replace").count("POST /api/kernels (@")
    started = time.monotonic()
    with (
        pytest.raises(ServerAuthError) as caught,
        RemoteKernelManager("python3", remote_server.url, "not-the-token"),
    ):
        pass
    assert time.monotonic() - started < 5
    assert caught.value.status in (401, 403)
    assert "not-the-token" not in str(caught.value)
    time.sleep(0.2)
    after = remote_server.log.read_text(errors="replace").count("POST /api/kernels (@")
    assert after - before == 1, "the refused request was retried"


@pytest.mark.anyio
async def test_a_websocket_with_a_wrong_token_is_refused_with_an_auth_error(
    remote_server: Server,
) -> None:
    url, token = remote_server.url, remote_server.token
    async with AsyncRemoteKernelManager("runtimelib-echo", url, token) as km:
        client = km.client()
        transport = client.transport
        transport.endpoint = dataclasses.replace(  # type: ignore[attr-defined]
            transport.endpoint,  # type: ignore[attr-defined]
            headers={"Authorization": "token not-the-token"},
        )
        with pytest.raises(ServerAuthError) as caught:
            async with client:
                pass
        assert "not-the-token" not in str(caught.value)


def test_unknown_kernels_and_kernelspecs_are_not_found(remote_server: Server) -> None:
    url, token = remote_server.url, remote_server.token
    with JupyterServer(url, token) as server, pytest.raises(ServerNotFoundError):
        server.kernel("00000000-0000-0000-0000-000000000000")
    with pytest.raises(ServerNotFoundError):
        RemoteKernelManager.attach("00000000-0000-0000-0000-000000000000", url, token).start()
    with (
        pytest.raises(ServerNotFoundError) as caught,
        RemoteKernelManager("no-such-kernelspec", url, token),
    ):
        pass
    assert "no-such-kernelspec" in str(caught.value)


def test_an_unreachable_server_is_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with (
        pytest.raises(ServerUnavailableError) as caught,
        RemoteKernelManager("python3", f"http://127.0.0.1:{port}", "secret-token"),
    ):
        pass
    assert "secret-token" not in str(caught.value)
    assert f"127.0.0.1:{port}" in str(caught.value)


# -- the server's rate limit ------------------------------------------------------------------


def test_output_dropped_by_the_server_rate_limit_is_reported(tmp_path: Path) -> None:
    """A server whose iopub limit is 20 messages a second drops most of 400 lines printed
    at once, says so in a stderr notice, and the result says output is missing."""
    limit = [
        "--ZMQChannelsWebsocketConnection.iopub_msg_rate_limit=20",
        "--ZMQChannelsWebsocketConnection.rate_limit_window=1.0",
    ]
    flood = "for i in range(400):\n    print(i, flush=True)"
    with (
        running_server("jupyter_server", tmp_path, limit) as server,
        RemoteKernelManager("python3", server.url, server.token) as km,
        km.client() as client,
    ):
        result = client.execute(flood, timeout=120)
        assert result.missing_output is not None
        assert result.missing_output.startswith("IOPub message rate exceeded")
        assert "IOPub message rate exceeded" in result.stderr
        assert len(result.stdout.splitlines()) < 400
        # Within the limit, nothing is missing.
        calm = client.execute("print('calm')", timeout=30)
        assert calm.missing_output is None
        assert calm.stdout == "calm\n"


# -- a server that sends what is not a message ------------------------------------------------


def v1_frame(channel: bytes, parts: list[bytes]) -> bytes:
    """A v1 frame built by hand, whatever its channel and parts."""
    count = len(parts) + 2
    offsets = [8 + 8 * count, 8 + 8 * count + len(channel)]
    for part in parts:
        offsets.append(offsets[-1] + len(part))
    table = b"".join(n.to_bytes(8, "little") for n in (count, *offsets))
    return table + channel + b"".join(parts)


class FakeKernelServer:
    """A websocket server that accepts a kernel websocket (v1), answers each kernel_info
    request, but first sends frames that are not messages, and a frame that is not a
    websocket message at all (a ping with a payload it must answer)."""

    GARBAGE: tuple[bytes | str, ...] = (
        b"",  # no offset count
        (7).to_bytes(8, "little") + b"\x00" * 8,  # a count the frame cannot hold
        (2**63).to_bytes(8, "little") + b"\x00" * 64,  # a huge count
        v1_frame(b"shell", [b"{}", b"{}", b"{}", b"{\xff"]),  # not JSON
        v1_frame(b"nowhere", [b"{}", b"{}", b"{}", b"{}"]),  # no such channel
        "not json at all",  # a text frame
        '{"header": [1, 2], "channel": "shell"}',  # JSON of the wrong shape
    )

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.answered = 0
        self.pongs = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        from wsproto import ConnectionType, WSConnection
        from wsproto.events import (
            AcceptConnection,
            BytesMessage,
            CloseConnection,
            Ping,
            Pong,
            Request,
            TextMessage,
        )

        from runtimelib.messages import KernelInfoReply, Status
        from runtimelib.protocol import Session
        from runtimelib.protocol.websocket import WebsocketCodec

        conn, _ = self.listener.accept()
        ws = WSConnection(ConnectionType.SERVER)
        session = Session()
        codec = WebsocketCodec(session, V1_SUBPROTOCOL)
        while True:
            data = conn.recv(65536)
            if not data:
                return
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, Request):
                    conn.sendall(ws.send(AcceptConnection(subprotocol=V1_SUBPROTOCOL)))
                    conn.sendall(ws.send(Ping(payload=b"are you there")))
                elif isinstance(event, Pong):
                    self.pongs += 1
                elif isinstance(event, BytesMessage):
                    request = codec.decode(event.data)
                    for frame in self.GARBAGE:
                        kind = TextMessage if isinstance(frame, str) else BytesMessage
                        conn.sendall(ws.send(kind(data=frame)))
                    reply = session.message(
                        KernelInfoReply(implementation="fake"), request, channel="shell"
                    )
                    idle = session.message(Status(execution_state="idle"), request)
                    for message in (reply, idle):
                        conn.sendall(ws.send(BytesMessage(data=codec.encode(message))))
                    self.answered += 1
                elif isinstance(event, CloseConnection):
                    conn.sendall(ws.send(event.response()))
                    conn.close()
                    return
                elif isinstance(event, Ping):
                    conn.sendall(ws.send(event.response()))

    def endpoint(self, session: Session, headers: dict[str, str]) -> Endpoint:
        """Where a client of ``session`` reaches this server."""
        return Endpoint(
            host="127.0.0.1",
            port=self.port,
            target=f"/api/kernels/fake/channels?session_id={session.session_id}",
            headers=headers,
        )

    def close(self) -> None:
        self.listener.close()


def test_frames_that_are_not_messages_are_dropped_and_the_client_keeps_serving() -> None:
    fake = FakeKernelServer()
    try:
        session = Session()
        endpoint = fake.endpoint(session, {"Authorization": "token t"})
        client = KernelClient(WebsocketTransport(endpoint, session), ready_timeout=None)
        with client:
            for _ in range(3):
                assert client.kernel_info(timeout=10).implementation == "fake"
        assert fake.answered == 3
        assert fake.pongs == 1
    finally:
        fake.close()


@pytest.mark.anyio
async def test_frames_that_are_not_messages_are_dropped_async() -> None:
    fake = FakeKernelServer()
    try:
        session = Session()
        endpoint = fake.endpoint(session, {})
        transport = WebsocketAsyncTransport(endpoint, session)
        async with AsyncKernelClient(transport, ready_timeout=None) as client:
            for _ in range(3):
                assert (await client.kernel_info(timeout=10)).implementation == "fake"
        assert fake.answered == 3
    finally:
        fake.close()


def test_a_launch_past_launch_timeout_is_a_timeout_error() -> None:
    """A server that takes longer to start a kernel than ``launch_timeout`` allows."""
    server = SlowLaunchServer(delay=3)
    try:
        started = time.monotonic()
        with (
            pytest.raises(KernelTimeoutError) as caught,
            RemoteKernelManager("python3", server.url, "t", launch_timeout=0.5),
        ):
            pass
        assert time.monotonic() - started < 2.5
        assert "launch_timeout" in str(caught.value)
    finally:
        server.close()


# -- a launch interrupted half way leaves no kernel behind -----------------------------------------


def test_ctrl_c_during_a_launch_shuts_the_launched_kernel_down() -> None:
    server = SlowLaunchServer(delay=1.0)
    main = threading.main_thread().ident
    assert main is not None
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    ctrl_c = threading.Timer(0.3, signal.pthread_kill, (main, signal.SIGINT))
    try:
        started = time.monotonic()
        ctrl_c.start()
        km = RemoteKernelManager("python3", server.url, "t")
        with pytest.raises(KeyboardInterrupt), km:
            pytest.fail("the launch was interrupted")
        assert km.server._http.is_closed
        # It waited for the server's answer, to shut that kernel down.
        assert time.monotonic() - started >= 1.0
        assert len(server.started) == 1
        assert server.deleted == server.started
    finally:
        ctrl_c.cancel()
        signal.signal(signal.SIGINT, previous)
        server.close()


@pytest.mark.anyio
async def test_a_launch_cancelled_half_way_shuts_the_launched_kernel_down() -> None:
    server = SlowLaunchServer(delay=1.0)
    try:
        km = AsyncRemoteKernelManager("python3", server.url, "t")
        with anyio.move_on_after(0.3) as scope:
            async with km:
                pytest.fail("the launch was cancelled")
        assert scope.cancelled_caught
        assert km.server._http.is_closed
        assert len(server.started) == 1
        assert server.deleted == server.started
    finally:
        server.close()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.anyio
async def test_a_launch_in_a_task_cancelled_by_asyncio_shuts_the_kernel_down() -> None:
    import asyncio

    server = SlowLaunchServer(delay=1.0)
    try:
        async with AsyncJupyterServer(server.url, "t") as api:
            task = asyncio.ensure_future(api.start_kernel("python3"))
            await asyncio.sleep(0.3)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert len(server.started) == 1
        assert server.deleted == server.started
    finally:
        server.close()


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, ServerAuthError),
        (403, ServerAuthError),
        (404, ServerNotFoundError),
        (409, ServerConflictError),
        (500, ServerUnavailableError),
        (503, ServerUnavailableError),
        (418, ServerError),
    ],
)
def test_each_status_is_its_typed_error_with_the_servers_reason(
    status: int, error: type[ServerError]
) -> None:
    body = b'{"message": "because I said so", "reason": null}'
    found = status_error(status, body, "start kernel 'python3'")
    assert type(found) is error
    assert found.status == status
    assert str(found).startswith("start kernel 'python3': ")
    assert "because I said so" in str(found)
    assert status_error(200, b"", "x") is None
    # A hostile body is not repeated at length.
    long = status_error(status, b'{"message": "' + b"x" * 10_000 + b'"}', "x")
    assert long is not None
    assert len(str(long)) < 400
