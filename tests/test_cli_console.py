"""``runtimelib console`` driven through a pseudo-terminal, keystroke by keystroke."""

from __future__ import annotations

import codecs
import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtimelib.cli.console import _readline_matches

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("jupyter_env")]

COMMAND = [sys.executable, "-m", "runtimelib", "console"]
KERNEL = ["-k", "runtimelib-python"]

# Patience for one expected piece of output; only a hang ever uses it up.
WAIT = 30.0

# Colour and cursor codes, and the markers readline drops from prompts.
_CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[=>]|[\r\x01\x02\x07]")


class Console:
    """The console in a child process whose controlling terminal is a pty we hold."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        environ = dict(os.environ if env is None else env)
        environ.pop("NO_COLOR", None)
        environ.pop("FORCE_COLOR", None)
        # A known terminal, and no personal readline settings.
        environ["TERM"] = "xterm"
        environ["INPUTRC"] = os.devnull
        argv = [*COMMAND, *args]
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: become the console at once, and never run pytest on
            try:
                os.execve(argv[0], argv, environ)
            finally:
                os._exit(127)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        #: Everything the console wrote, as it came (colour codes included).
        self.raw = ""
        # How far into the cleaned text expectations have been met.
        self._seen = 0
        self.returncode: int | None = None

    @property
    def text(self) -> str:
        """The output without control codes."""
        return _CONTROL.sub("", self.raw)

    def _read(self, timeout: float) -> bool:
        """Take what the console wrote within ``timeout``; False once it closed the pty."""
        ready, _, _ = select.select([self.fd], [], [], max(timeout, 0))
        if not ready:
            return True
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # EIO: every holder of the terminal's other end has exited
            data = b""
        if not data:
            return False
        self.raw += self._decoder.decode(data)
        return True

    def expect(self, pattern: str) -> re.Match[str]:
        """Wait for output matching the regular expression, past what was matched before."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + WAIT
        while True:
            match = regex.search(self.text, self._seen)
            if match is not None:
                self._seen = match.end()
                return match
            left = deadline - time.monotonic()
            if left <= 0 or (not self._read(min(left, 0.5)) and self._exited()):
                rest = self.text[self._seen :]
                raise AssertionError(f"no {pattern!r} in the console's output:\n{rest}")

    def prompt(self, number: int) -> None:
        """Wait for ``In [number]:``."""
        self.expect(rf"In \[{number}\]: ")

    def send(self, keys: str) -> None:
        """Type ``keys``."""
        os.write(self.fd, keys.encode())

    def line(self, text: str) -> None:
        """Type a line and press Enter."""
        self.send(text + "\r")

    def ctrl_c(self) -> None:
        """Press Ctrl-C once the console waits in a blocking call.

        CPython runs signal handlers between bytecodes, and in a blocking call (readline's
        select, a lock) only when a signal interrupts it. A Ctrl-C arriving just before the
        call blocks is seen only when the call returns: at the next key, or never while a cell
        runs. A person cannot type that fast; a test can, so it waits for the main thread to
        sleep first (Linux tells; elsewhere this does not wait).
        """
        stat = Path(f"/proc/{self.pid}/task/{self.pid}/stat")
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                state = stat.read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                break
            if state == "S":
                break
            time.sleep(0.01)
        self.send("\x03")

    def _exited(self) -> bool:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode is not None

    def wait(self) -> int:
        """Wait for the console to exit, reading what it writes; its exit code."""
        deadline = time.monotonic() + WAIT
        while not self._exited():
            if time.monotonic() > deadline:
                raise AssertionError(f"the console did not exit:\n{self.text[self._seen :]}")
            if not self._read(0.1):
                time.sleep(0.05)
        while self._read(0):
            pass
        assert self.returncode is not None
        return self.returncode

    def close(self) -> None:
        """Kill the console if it still runs, and wait until its kernel is gone."""
        if not self._exited():
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            self.returncode = -signal.SIGKILL
            # The orphan guard ends the kernel and removes its connection file.
            runtime = Path(os.environ["JUPYTER_RUNTIME_DIR"])
            deadline = time.monotonic() + WAIT
            while list(runtime.glob("kernel-*.json")) and time.monotonic() < deadline:
                time.sleep(0.1)
        os.close(self.fd)


@pytest.fixture
def console() -> Iterator[Console]:
    """A console on the built-in Python kernel, at its first prompt."""
    session = Console(*KERNEL)
    try:
        session.prompt(1)
        yield session
    finally:
        session.close()


def test_banner_then_a_value_as_out(console: Console) -> None:
    assert "(runtimelib kernel)" in console.text
    console.line("40 + 2")
    console.expect(r"Out\[1\]: 42\n")
    console.prompt(2)


def test_prompt_is_coloured_on_a_terminal(console: Console) -> None:
    assert "\x1b[32m" in console.raw


def test_print_output(console: Console) -> None:
    console.line("print('hel' + 'lo')")
    console.expect(r"\nhello\n")
    console.prompt(2)
    assert "Out[1]" not in console.text


def test_output_without_newline_does_not_swallow_the_prompt(console: Console) -> None:
    console.line("print('no' + 'end', end='')")
    console.expect(r"noend\n")
    console.prompt(2)


def test_multi_line_input_waits_for_the_kernel_to_call_it_complete(console: Console) -> None:
    console.line("total = (1 +")
    console.expect(r"\.\.\.: ")
    console.line("41)")
    console.prompt(2)
    console.line("def f():")
    console.expect(r"\.\.\.: ")
    # The kernel's indent is typed in already: the body needs none of its own.
    console.line("return total")
    # Whether the body alone makes the cell complete is the kernel's call; after an empty
    # line it is complete either way.
    console.expect(r"In \[3\]: |\.\.\.: ")
    console.line("")
    console.prompt(3)
    console.line("f()")
    console.expect(r"Out\[3\]: 42\n")


# Code as it is pasted: each line carries its own indentation, and a dedented line follows an
# indented block. An indent added by the console on top would make "else:" an error.
PASTED = "if 6 * 7 == 42:\n    answer = 'yes'\nelse:\n    answer = 'no'\n"


def test_pasted_code_keeps_its_own_indentation(console: Console) -> None:
    # A terminal without bracketed paste: the lines arrive as fast as the terminal sends them.
    console.send(PASTED.replace("\n", "\r") + "\r")
    console.prompt(2)
    console.line("answer")
    console.expect(r"Out\[2\]: 'yes'")
    assert "IndentationError" not in console.text


def test_a_bracketed_paste_is_one_cell(console: Console) -> None:
    # The console turns bracketed paste on; the terminal wraps what is pasted in markers.
    console.line("for i in range(2):")
    console.expect(r"\.\.\.: ")
    # The pasted body ends with an empty line: that ends the block, and the cell runs.
    console.send("\x1b[200~" + "    total = i\n    total += 40\n" + "\x1b[201~" + "\r")
    console.prompt(2)
    console.send("\x1b[200~" + PASTED + "\x1b[201~" + "\r")
    console.prompt(3)
    console.line("answer, total")
    console.expect(r"Out\[3\]: \('yes', 41\)")
    assert "IndentationError" not in console.text


def test_exit_in_the_kernel_asks_the_console_to_leave(console: Console) -> None:
    # Not the console's own exit word: the kernel's exit(), which sends an ask_exit payload.
    console.line("print('bye'); exit()")
    console.expect(r"bye")
    assert console.wait() == 0
    assert "SystemExit" not in console.text


def test_an_error_shows_the_traceback_and_the_prompt_returns(console: Console) -> None:
    console.line("1 / 0")
    console.expect(r"Traceback")
    console.expect(r"ZeroDivisionError: division by zero")
    console.prompt(2)
    console.line("'still ' + 'here'")
    console.expect(r"Out\[2\]: 'still here'")


def test_input_in_the_kernel_is_answered_at_the_terminal(console: Console) -> None:
    console.line("name = input('your ' + 'name? ')")
    console.expect(r"your name\? ")
    console.line("Ada")
    console.prompt(2)
    console.line("'hi ' + name")
    console.expect(r"Out\[2\]: 'hi Ada'")


def test_ctrl_c_while_code_runs_interrupts_the_kernel(console: Console) -> None:
    # The sleep outlasts the expectations below: only the interrupt brings the prompt back.
    console.line("import time; print('sl' + 'eeping', flush=True); time.sleep(300)")
    console.expect(r"sleeping\n")
    console.ctrl_c()
    console.expect(r"KeyboardInterrupt")
    console.prompt(2)
    console.line("6 * 7")
    console.expect(r"Out\[2\]: 42")


def test_second_ctrl_c_stops_waiting_for_a_kernel_that_ignores_it(console: Console) -> None:
    console.line(
        "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN);"
        " print('deaf' + 'ened', flush=True); time.sleep(300)"
    )
    console.expect(r"deafened\n")
    console.ctrl_c()
    console.expect(r"interrupting the kernel")
    console.ctrl_c()
    console.expect(r"stopped waiting")
    console.prompt(2)
    # Leaving stops the kernel, busy or not.
    console.send("\x04")
    assert console.wait() == 0


def test_ctrl_c_at_the_prompt_discards_the_line(console: Console) -> None:
    console.send("this is not run")
    console.expect(r"this is not run")
    console.ctrl_c()
    console.prompt(1)
    console.line("1 + 1")
    console.expect(r"Out\[1\]: 2\n")


def test_tab_completes_a_name_defined_in_the_kernel(console: Console) -> None:
    console.line("alpha_beta = 1")
    console.prompt(2)
    console.send("alpha_\t")
    console.expect(r"alpha_beta")
    console.send("\r")
    console.expect(r"Out\[2\]: 1\n")


def test_ctrl_d_leaves_stops_the_kernel_and_keeps_history(jupyter_env: Path) -> None:
    session = Console(*KERNEL)
    try:
        session.prompt(1)
        session.line("'remember ' + 'me'")
        session.prompt(2)
        session.send("\x04")
        assert session.wait() == 0
    finally:
        session.close()
    assert list(jupyter_env.glob("kernel-*.json")) == []
    history = Path(os.environ["JUPYTER_DATA_DIR"]) / "runtimelib" / "console_history"
    assert "'remember ' + 'me'" in history.read_text()


def test_history_of_an_earlier_session_comes_back_with_up_arrow() -> None:
    for keys, expected in (("'first ' + 'one'", "'first one'"), ("\x1b[A", "'first one'")):
        session = Console(*KERNEL)
        try:
            session.prompt(1)
            session.line(keys)
            session.expect(rf"Out\[1\]: {expected}")
            session.prompt(2)
            session.send("\x04")
            assert session.wait() == 0
        finally:
            session.close()


@pytest.mark.parametrize("word", ["exit", "quit"])
def test_exit_words_leave(console: Console, word: str) -> None:
    console.line(word)
    assert console.wait() == 0


def test_an_unwritable_history_file_is_no_failure(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    session = Console(*KERNEL, env={**os.environ, "JUPYTER_DATA_DIR": str(blocker)})
    try:
        session.prompt(1)
        session.line("3 * 3")
        session.expect(r"Out\[1\]: 9")
        session.prompt(2)
        session.send("\x04")
        assert session.wait() == 0
    finally:
        session.close()


def test_a_dying_kernel_ends_the_console_with_code_4(console: Console) -> None:
    console.line("import os; os._exit(1)")
    console.expect(r"kernel died")
    assert console.wait() == 4


def test_existing_kernel_is_used_and_left_running(jupyter_env: Path) -> None:
    started = subprocess.run(
        [sys.executable, "-m", "runtimelib", "start", *KERNEL],
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=True,
    )
    kernel_id = started.stdout.strip()
    try:
        subprocess.run(
            [sys.executable, "-m", "runtimelib", "run", "--existing", kernel_id, "-c", "x = 5"],
            timeout=WAIT,
            check=True,
            capture_output=True,
        )
        session = Console("--existing", kernel_id)
        try:
            # The kernel ran one cell already: the prompt numbers on from it.
            session.prompt(2)
            session.line("x * 2")
            session.expect(r"Out\[2\]: 10")
            session.prompt(3)
            session.send("\x04")
            assert session.wait() == 0
        finally:
            session.close()
        assert (jupyter_env / f"kernel-{kernel_id}.json").exists()
    finally:
        subprocess.run(
            [sys.executable, "-m", "runtimelib", "stop", kernel_id],
            timeout=WAIT,
            check=False,
            capture_output=True,
        )


def test_existing_kernel_that_does_not_exist_exits_3() -> None:
    result = subprocess.run(
        [*COMMAND, "--existing", "no-such-kernel"],
        capture_output=True,
        text=True,
        timeout=WAIT,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 3
    assert "no-such-kernel" in result.stderr


def test_piped_input_runs_without_a_terminal() -> None:
    result = subprocess.run(
        [*COMMAND, *KERNEL],
        input="40 + 2\nprint('pi' + 'ped')\n",
        capture_output=True,
        text=True,
        timeout=WAIT,
        env={k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")},
    )
    assert result.returncode == 0, result.stderr
    assert "Out[1]: 42\n" in result.stdout
    assert "piped\n" in result.stdout
    assert "\x1b[" not in result.stdout


@pytest.mark.parametrize(
    ("matches", "code", "cursor_start", "word_start", "word", "expected"),
    [
        # The kernel and readline agree on where the word starts.
        (
            ["alpha_beta", "alpha_gamma"],
            "x = alpha_",
            4,
            4,
            "alpha_",
            ["alpha_beta", "alpha_gamma"],
        ),
        # The kernel replaces more than readline's word: only the part in that word is given.
        (["os.path", "os.pathsep"], "os.pa", 0, 3, "pa", ["path", "pathsep"]),
        # The kernel replaces less: the text in between is kept.
        (["path"], "os.pa", 3, 0, "os.pa", ["os.path"]),
        # Matches that would rewrite what the word does not cover, or drop typed text, go.
        (["xs.path", "os.path"], "os.pa", 0, 3, "pa", ["path"]),
        (["apple", "banana", "apple"], "ap", 0, 0, "ap", ["apple"]),
    ],
)
def test_readline_matches(
    matches: list[str],
    code: str,
    cursor_start: int,
    word_start: int,
    word: str,
    expected: list[str],
) -> None:
    assert _readline_matches(matches, code, cursor_start, word_start, word) == expected
