"""A TCP proxy for fault tests: it forwards connections to a server and cuts them on demand."""

from __future__ import annotations

import contextlib
import socket
import threading


class CuttingProxy:
    """Forwards every connection to ``127.0.0.1:port``; ``cut()`` drops them all.

    A cut ends each connection the way a network drop looks to the server first: the server
    reads the end of its client's stream, and what it had already written still reaches the
    client before the client's side is closed too. So a server that keeps a client's messages
    while it is away (Jupyter Server does) has lost nothing, and a client that reconnects
    must see every message exactly once.
    """

    def __init__(self, port: int) -> None:
        self.target = port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._closed = False
        self.connections = 0
        #: While set, connections are accepted and closed at once (the server is "down").
        self.refusing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.refusing:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._pairs.append((client, upstream))
                self.connections += 1
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, from_server: bool) -> None:
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            try:
                sink.sendall(data)
            except OSError:
                break
        if from_server:
            # The server closed: now the client learns of the drop.
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_RDWR)
            sink.close()
            source.close()

    def cut(self) -> None:
        """Drop every open connection (see the class docstring)."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for _client, upstream in pairs:
            with contextlib.suppress(OSError):
                upstream.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        self.cut()
