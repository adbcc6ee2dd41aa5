"""One execute request (sans-IO): its options, when it is complete, and what a timeout says."""

from __future__ import annotations

from collections.abc import Generator

import pytest

from runtimelib.client.execution import Execution
from runtimelib.client.requests import run_now
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


def test_the_request_carries_the_options_and_allow_stdin_follows_the_input_handler() -> None:
    session = Session(b"key")
    plain = Execution(session, "x").request
    assert (plain.content.silent, plain.content.store_history, plain.content.stop_on_error) == (
        False,
        True,
        True,
    )
    assert plain.content.allow_stdin is False
    assert plain.header.subshell_id is None
    handled = Execution(session, "x", answers_input=True, silent=True, subshell_id="s1").request
    assert handled.content.allow_stdin is True
    assert handled.content.silent is True
    assert handled.header.subshell_id == "s1"
    refused = Execution(session, "x", answers_input=True, allow_stdin=False).request
    assert refused.content.allow_stdin is False


def test_a_misspelt_option_is_a_type_error_not_ignored() -> None:
    with pytest.raises(TypeError, match="'silnet'"):
        Execution(Session(b"key"), "x", silnet=True)  # type: ignore[call-arg]


def test_a_shared_request_that_suspends_in_the_blocking_client_is_an_error() -> None:
    class Suspend:
        def __await__(self) -> Generator[None, None, None]:
            yield

    async def suspends() -> int:
        await Suspend()
        return 1

    async def finishes(value: int) -> int:
        return value

    assert run_now(finishes)(7) == 7
    with pytest.raises(RuntimeError, match="suspends suspended in a blocking client"):
        run_now(suspends)()
