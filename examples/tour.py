"""A tour of runtimelib's foundation: connection files, signed messages, rich media.

    python examples/tour.py

Everything here runs without a kernel: it plays both sides of the wire.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from runtimelib import ConnectionInfo, Message, MimeBundle
from runtimelib.messages import DisplayData, ExecuteReply, ExecuteRequest, Status, Stream
from runtimelib.protocol import Session


class Fraction:
    """An object that knows how to show itself richly, as IPython's display protocol allows."""

    def __init__(self, top: int, bottom: int) -> None:
        self.top, self.bottom = top, bottom

    def __repr__(self) -> str:
        return f"{self.top}/{self.bottom}"

    def _repr_latex_(self) -> str:
        return rf"$\frac{{{self.top}}}{{{self.bottom}}}$"

    def _repr_html_(self) -> str:
        return f"<sup>{self.top}</sup>&frasl;<sub>{self.bottom}</sub>"


def main() -> None:
    # A connection file, as a kernel manager writes one before launching a kernel.
    info = ConnectionInfo.new(kernel_name="python3")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "kernel-tour.json"
        info.write(path)
        print(f"connection file {path.name}, mode {path.stat().st_mode & 0o777:o}")
        assert ConnectionInfo.from_file(path) == info
    for channel in ("shell", "iopub", "stdin", "control", "hb"):
        print(f"  {channel:<8} {info.endpoint(channel)}")

    # A client sends an execute_request; the kernel reads it, verifying the signature.
    client = Session(info.key_bytes, info.signature_scheme)
    kernel = Session(info.key_bytes, info.signature_scheme)
    frames = client.serialize(client.message(ExecuteRequest(code="Fraction(1, 3)")))
    print(f"\nexecute_request on the wire: {len(frames)} frames, signature {frames[1][:16]!r}...")
    request = kernel.deserialize(frames, channel="shell")

    # The kernel answers: status, a stream, rich output built from a Python object, the reply.
    bundle = MimeBundle.from_object(Fraction(1, 3))
    outputs = [
        kernel.message(Status(execution_state="busy"), request),
        kernel.message(Stream(name="stdout", text="computing...\n"), request),
        kernel.message(DisplayData(data=bundle.data, metadata=bundle.metadata), request),
        kernel.message(Status(execution_state="idle"), request),
    ]
    reply = request.reply(ExecuteReply(execution_count=1), session=kernel.session_id)

    # The client reads them back as typed messages and matches them to its request.
    print("\nwhat the client sees:")
    for sent in [*outputs, reply]:
        message: Message = client.deserialize(kernel.serialize(sent))
        assert message.parent_id == request.msg_id
        match message.content:
            case Status(execution_state=state):
                print(f"  status      {state}")
            case Stream(name=name, text=text):
                print(f"  {name:<11} {text.rstrip()}")
            case DisplayData() as display:
                shown = display.bundle.richest()
                print(f"  display     {shown}: {display.bundle[shown]!s}")
                print(f"              plain text: {display.bundle.text}")
            case ExecuteReply(status=status, execution_count=count):
                print(f"  reply       {status}, execution_count={count}")


if __name__ == "__main__":
    main()
