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
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
from collections.abc import Callable
from typing import Any, NamedTuple

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
    args = parser.parse_args()
    for title, section in SECTIONS:
        print_rows(title, section(args.rounds), args.rounds)


if __name__ == "__main__":
    main()
