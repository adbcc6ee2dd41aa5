"""ZeroMQ, the wire of local kernels: sockets, channels and the two transports.

- ``sockets``: which socket each side opens for each channel, and the calls on them;
- ``channels``: one channel as typed messages in and out (async and blocking), the heartbeat,
  the farewell to an old kernel;
- ``asynchronous`` and ``blocking``: every channel of a kernel, read all the time, for async
  code (one task) and for threads (an I/O thread and the callers that wait);
- ``sigint``: how the blocking reader keeps Ctrl-C from landing mid-delivery;
- ``registration``: the startup handshake's sockets (a launcher's registration socket, and a
  kernel binding ports of its own and reporting them).
"""

from .asynchronous import ZmqAsyncTransport
from .blocking import ZmqTransport
from .channels import AsyncChannel, AsyncHeartbeat, Channel, Farewell, Heartbeat
from .sockets import (
    CLIENT_SOCKET_TYPES,
    KERNEL_SOCKET_TYPES,
    MESSAGE_CHANNELS,
    STARTUP_RECONNECT_MS,
    HandshakeWatch,
    HeartbeatEcho,
    bind_kernel_socket,
    client_socket,
    recv_parts,
    send_parts,
    watched_socket,
    zmq_events,
    zmq_fd,
)

__all__ = [
    "CLIENT_SOCKET_TYPES",
    "KERNEL_SOCKET_TYPES",
    "MESSAGE_CHANNELS",
    "STARTUP_RECONNECT_MS",
    "AsyncChannel",
    "AsyncHeartbeat",
    "Channel",
    "Farewell",
    "HandshakeWatch",
    "Heartbeat",
    "HeartbeatEcho",
    "ZmqAsyncTransport",
    "ZmqTransport",
    "bind_kernel_socket",
    "client_socket",
    "recv_parts",
    "send_parts",
    "watched_socket",
    "zmq_events",
    "zmq_fd",
]
