"""Codec throughput: runtimelib's Session against jupyter_client's, side by side in one run.

    python bench/codec.py [--rounds 7] [--json]

Each round times every contender on the same messages, interleaved, so machine noise hits
all of them alike; the report gives medians and the ratio runtimelib / jupyter_client.
"raw" is the floor: msgspec encoding or decoding plus HMAC-SHA256 and nothing else.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import msgspec
from jupyter_client.session import Session as JCSession

from runtimelib.messages import DisplayData, ExecuteRequest, Message
from runtimelib.protocol import Session

KEY = b"0d2ffd6b-5bd5-4ab3-9b8b-0ab0de2a04b0"


def _png_payload(size: int) -> str:
    raw = b"\x89PNG\r\n\x1a\n" + os.urandom(size * 3 // 4)
    return base64.b64encode(raw).decode("ascii")


def _cases() -> dict[str, tuple[int, Callable[[], Any], str, dict[str, Any]]]:
    png = _png_payload(1024 * 1024)
    return {
        "small execute_request": (
            20_000,
            lambda: ExecuteRequest(code="print('hello, world')"),
            "execute_request",
            {
                "code": "print('hello, world')",
                "silent": False,
                "store_history": True,
                "user_expressions": {},
                "allow_stdin": True,
                "stop_on_error": True,
            },
        ),
        "1 MB display_data": (
            200,
            lambda: DisplayData(data={"image/png": png, "text/plain": "<Figure>"}),
            "display_data",
            {"data": {"image/png": png, "text/plain": "<Figure>"}, "metadata": {}, "transient": {}},
        ),
    }


def _each(fn: Callable[[Any], Any], items: list[Any]) -> None:
    for item in items:
        fn(item)  # results are dropped, as a sender or a reader loop would


def _rate(count: int, fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return count / (time.perf_counter() - start)


def _round(
    ours: Session,
    theirs: JCSession,
    our_msgs: list[Message[Any]],
    their_msgs: list[dict[str, Any]],
) -> dict[str, Callable[[], None]]:
    """The contenders of one round; fresh receivers, since both refuse replayed signatures."""
    encoder = msgspec.json.Encoder()
    decoder = msgspec.json.Decoder()
    our_rx = Session(KEY)
    their_rx = JCSession(key=KEY, packer="json", unpacker="json")
    our_frames = [ours.serialize(m) for m in our_msgs]
    their_frames = [theirs.serialize(m)[1:] for m in their_msgs]  # drop the delimiter
    json_parts = [f[1:5] for f in their_frames]

    def raw_encode() -> None:
        for m in their_msgs:
            mac = hmac.new(KEY, digestmod=hashlib.sha256)
            mac.update(encoder.encode(m["header"]))
            mac.update(b"{}")
            mac.update(encoder.encode(m["metadata"]))
            mac.update(encoder.encode(m["content"]))
            mac.hexdigest()

    def raw_decode() -> None:
        for parts in json_parts:
            mac = hmac.new(KEY, digestmod=hashlib.sha256)
            for part in parts:
                mac.update(part)
            mac.hexdigest()
            for part in parts:
                decoder.decode(part)

    def hmac_only() -> None:
        for parts in json_parts:
            mac = hmac.new(KEY, digestmod=hashlib.sha256)
            for part in parts:
                mac.update(part)
            mac.hexdigest()

    return {
        "serialize runtimelib": lambda: _each(ours.serialize, our_msgs),
        "serialize jupyter_client": lambda: _each(theirs.serialize, their_msgs),
        "serialize raw": raw_encode,
        "deserialize runtimelib": lambda: _each(our_rx.deserialize, our_frames),
        "deserialize jupyter_client": lambda: _each(
            lambda f: their_rx.deserialize(f, content=True), their_frames
        ),
        "deserialize raw": raw_decode,
        "hmac only": hmac_only,
    }


def run(rounds: int) -> dict[str, dict[str, float]]:
    """Median messages/s of every contender for every case."""
    ours = Session(KEY)
    # jupyter_client packs with the json module unless orjson happens to be installed;
    # a plain ``pip install jupyter_client`` does not install it. Measure what users get.
    theirs = JCSession(key=KEY, packer="json", unpacker="json")
    results: dict[str, dict[str, float]] = {}
    for case, (count, make, msg_type, content) in _cases().items():
        our_msgs = [ours.message(make()) for _ in range(count)]
        their_msgs = [theirs.msg(msg_type, content) for _ in range(count)]
        rates: dict[str, list[float]] = {}
        for _ in range(rounds):
            for name, fn in _round(ours, theirs, our_msgs, their_msgs).items():
                rates.setdefault(name, []).append(_rate(count, fn))
        results[case] = {name: statistics.median(values) for name, values in rates.items()}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print the medians as JSON")
    args = parser.parse_args()
    medians = run(args.rounds)
    if args.json:
        json.dump(medians, sys.stdout, indent=2)
        return
    for case, rates in medians.items():
        print(f"\n{case} (messages/s, median of {args.rounds} rounds)")
        for op in ("serialize", "deserialize"):
            ours = rates[f"{op} runtimelib"]
            theirs = rates[f"{op} jupyter_client"]
            raw = rates[f"{op} raw"]
            print(
                f"  {op:<12} runtimelib {ours:>10,.0f}  jupyter_client {theirs:>10,.0f}"
                f"  raw {raw:>10,.0f}  ratio {ours / theirs:5.1f}x"
            )
        print(
            f"  HMAC-SHA256 of the frames alone: {rates['hmac only']:,.0f}/s (a ceiling for both)"
        )


if __name__ == "__main__":
    main()
