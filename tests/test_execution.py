"""What an execute that ran out of time is reported as, by how far the kernel got with it."""

from __future__ import annotations

import pytest

from runtimelib.client.execution import Execution
from runtimelib.messages import ExecuteReply, Status
from runtimelib.protocol import Session


def _execution_after(*seen: str) -> Execution:
    session = Session(b"key")
    execution = Execution(session, "print(1)")
    for what in seen:
        if what == "reply":
            content, channel = ExecuteReply(execution_count=1), "shell"
        else:
            content, channel = Status(execution_state=what), "iopub"
        message = session.message(content, execution.request, channel=channel)
        execution.classify(message)
    return execution


@pytest.mark.parametrize(
    ("seen", "said"),
    [
        ((), "the kernel did not start running the code within 5 s"),
        (("busy",), "the code was still running after 5 s (it goes on in the kernel)"),
        (
            ("busy", "reply"),
            "the kernel answered, but its idle status had not come after 5 s"
            " (the outputs may be incomplete)",
        ),
        (("busy", "idle"), "the kernel went idle but sent no reply within 5 s"),
    ],
)
def test_a_timeout_says_how_far_the_kernel_got(seen: tuple[str, ...], said: str) -> None:
    execution = _execution_after(*seen)
    assert not execution.done
    assert str(execution.timed_out(5)) == said


def test_reply_and_idle_in_either_order_complete_it() -> None:
    assert _execution_after("busy", "reply", "idle").done
    assert _execution_after("busy", "idle", "reply").done
