"""``runtimelib console``: an interactive prompt on a kernel, with readline editing and history."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import select
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

from .. import errors
from ..client import ExecutionResult, KernelClient, Output
from ..manager import KernelManager, find_running_kernel
from ..messages import ExecuteResult, Stream
from . import EXIT_KERNEL, EXIT_OK
from .ctrlc import CtrlC
from .term import Terminal

__all__ = ["run_console"]

# Typed alone at the main prompt, these leave the console; the kernel never sees them.
_EXIT_WORDS = frozenset({"exit", "quit"})

# Seconds to wait for the answers the prompt itself depends on. A busy kernel (one shared
# with another frontend) must not freeze the prompt: on a timeout the console carries on.
_INFO_TIMEOUT = 10.0
_IS_COMPLETE_TIMEOUT = 5.0
_COMPLETE_TIMEOUT = 3.0
_INTERRUPT_TIMEOUT = 5.0

_HISTORY_LENGTH = 2000

# SGR codes of the prompts, as IPython colours them.
_IN_STYLE = "32"
_OUT_STYLE = "31"


def run_console(args: argparse.Namespace) -> int:
    """Run the console on a new kernel (``-k``) or a running one (``--existing``), of this
    machine or of a server (``--server``)."""
    terminal = Terminal()
    readline = _import_readline() if sys.stdin.isatty() else None
    if getattr(args, "server", None) is not None:
        from .remote import remote_kernel

        # A kernel started for the console ends with it; an --existing one keeps running.
        with remote_kernel(args, args.kernel, args.existing) as remote, remote.client() as kc:
            return _Console(kc, remote.interrupt, terminal, readline).run()
    if args.existing:
        with KernelClient(find_running_kernel(args.existing)) as kc:

            def interrupt() -> None:
                kc.interrupt(timeout=_INTERRUPT_TIMEOUT)

            # Someone else's kernel: it keeps running when the console ends.
            return _Console(kc, interrupt, terminal, readline).run()
    manager = KernelManager(args.kernel, transport_encryption=args.transport_encryption)
    with manager as km, km.client() as kc:
        return _Console(kc, km.interrupt, terminal, readline).run()


def _import_readline() -> ModuleType | None:
    """The readline module, or None where Python was built without it."""
    try:
        import readline
    except ImportError:
        return None
    return readline


def _history_path() -> Path:
    from jupyter_core.paths import jupyter_data_dir

    return Path(jupyter_data_dir()) / "runtimelib" / "console_history"


def _input_waiting() -> bool:
    """Whether keys are already waiting on standard input: pasted, or typed ahead."""
    try:
        return bool(select.select([sys.stdin.fileno()], [], [], 0)[0])
    except (OSError, ValueError):
        return False


def _readline_matches(
    matches: list[str], code: str, cursor_start: int, word_start: int, word: str
) -> list[str]:
    """The kernel's completions as readline wants them.

    The kernel replaces ``code[cursor_start:cursor]`` with a match (messaging spec,
    complete_reply); readline replaces only the word it split off, ``word``, which starts at
    ``word_start``. A match that would rewrite text before that word, or that does not extend
    the word, cannot be offered.
    """
    head = code[:word_start]
    found: list[str] = []
    for match in matches:
        whole = code[:cursor_start] + match
        if not whole.startswith(head):
            continue
        text = whole[word_start:]
        if text.startswith(word) and text not in found:
            found.append(text)
    return found


class _Console:
    """The read-execute-print loop on one kernel client."""

    def __init__(
        self,
        kc: KernelClient,
        interrupt: Callable[[], None],
        terminal: Terminal,
        readline: ModuleType | None,
    ) -> None:
        self.kc = kc
        self.ctrl_c = CtrlC(interrupt, terminal)
        self.terminal = terminal
        self.readline = readline
        # input() uses readline only when both ends are a terminal; prompts then need
        # their colour codes marked as taking no room on the line.
        self.editing = readline is not None and sys.stdout.isatty()
        #: The number of the next prompt, ``In [N]``.
        self.count = 1
        # The lines typed so far of the cell being read, for completing in context.
        self.lines: list[str] = []
        self.matches: list[str] = []
        self.at_line_start = True
        self.leave = False

    # -- the loop ------------------------------------------------------------------------------

    def run(self) -> int:
        """Show the banner, then read and run cells until EOF or an exit word."""
        try:
            with self._line_editing():
                self._banner()
                self._sync_count()
                while not self.leave:
                    try:
                        code = self._read_cell()
                        if code is None:
                            break
                        if code.strip():
                            self._run_cell(code)
                    except KeyboardInterrupt:
                        self._write("\n")  # the line is discarded, as in a shell
                    except EOFError:
                        self._write("\n")
                        break
        except errors.KernelDiedError as exc:
            self._end_line()
            self.terminal.error_line(f"runtimelib: the kernel died ({exc})")
            return EXIT_KERNEL
        return EXIT_OK

    def _banner(self) -> None:
        info = self.kc.kernel_info(timeout=_INFO_TIMEOUT)
        if info.banner.strip():
            self._write(self.terminal.style(info.banner.rstrip(), "2") + "\n\n")

    def _sync_count(self) -> None:
        # On a kernel that has run code before (--existing), number on from its count.
        # A silent execution does not count, and its reply says the last count used.
        with contextlib.suppress(errors.KernelTimeoutError):
            result = self.kc.execute("", silent=True, store_history=False, timeout=_INFO_TIMEOUT)
            if result.execution_count is not None:
                self.count = max(result.execution_count, 0) + 1

    def _read_cell(self) -> str | None:
        """Lines until the kernel finds them complete; None for an exit word."""
        self.lines = []
        indent = ""
        try:
            while True:
                line = self._read_line(self._prompt(), indent)
                if not self.lines:
                    if line.strip() in _EXIT_WORDS:
                        return None
                    if not line.strip():
                        return ""
                self.lines.append(line)
                code = "\n".join(self.lines)
                try:
                    verdict = self.kc.is_complete(code, timeout=_IS_COMPLETE_TIMEOUT)
                except errors.KernelTimeoutError:
                    return code
                # "invalid" runs too: the kernel's error message says more than we could.
                if verdict.status != "incomplete":
                    return code
                indent = verdict.indent
        finally:
            self.lines = []

    def _run_cell(self, code: str) -> None:
        try:
            with self.ctrl_c.installed():
                result = self.kc.execute(code, input=self._answer, on_output=self._show)
        except KeyboardInterrupt:
            self._end_line()
            self.terminal.note("stopped waiting; the kernel may still be busy")
            self.count += 1
            return
        self.count = (
            result.execution_count + 1 if result.execution_count is not None else self.count + 1
        )
        self._payloads(result)
        self._end_line()
        self._write("\n")

    def _payloads(self, result: ExecutionResult) -> None:
        """Act on the reply's payloads that a terminal can honour (ipykernel's ``?`` help
        pages and ``exit()``)."""
        for payload in result.payload:
            source = payload.get("source") if isinstance(payload, dict) else None
            if source == "page" and isinstance(payload.get("data"), dict):
                text = self.terminal.render_data(payload["data"])
                self._write(text if text.endswith("\n") else text + "\n")
            elif source == "ask_exit" and not payload.get("keepkernel", False):
                self.leave = True

    # -- output and prompts --------------------------------------------------------------------

    def _write(self, text: str) -> None:
        if text:
            self.terminal.out.write(text)
            self.terminal.out.flush()
            self.at_line_start = text.endswith("\n")

    def _end_line(self) -> None:
        """Finish a line the kernel's output left open, so a prompt starts at the left."""
        if not self.at_line_start:
            self._write("\n")

    def _show(self, output: Output) -> None:
        if isinstance(output, ExecuteResult):
            number = output.execution_count if output.execution_count is not None else self.count
            text = self.terminal.render_data(output.data).rstrip("\n")
            # A value of several lines starts on a line of its own, so its columns line up.
            head = self.terminal.style(f"Out[{number}]:", _OUT_STYLE)
            self._end_line()
            self._write(head + ("\n" if "\n" in text else " ") + text + "\n")
            return
        self.terminal.output(output)
        if isinstance(output, Stream):
            if output.text:
                self.at_line_start = output.text.endswith("\n")
        else:
            self.at_line_start = True

    def _prompt(self) -> str:
        first = f"In [{self.count}]: "
        text = " " * (len(first) - 5) + "...: " if self.lines else first
        if not self.terminal.color:
            return text
        if self.editing:
            # \x01 and \x02 tell readline the codes between them take no columns.
            return f"\x01\x1b[{_IN_STYLE}m\x02{text}\x01\x1b[0m\x02"
        return self.terminal.style(text, _IN_STYLE)

    # -- reading lines -------------------------------------------------------------------------

    def _read_line(self, prompt: str, prefill: str = "") -> str:
        """A line, indented as the kernel suggests (``prefill``) when it is being typed.

        Pasted code brings its own indentation, and an indent added to it breaks it
        (``else:`` pushed under its ``if``). A paste shows in one of two ways: lines already
        waiting on the terminal when the prompt appears (no indent is added to them), or,
        with bracketed paste, a line that arrives holding several lines: the indent drawn
        before the paste is taken off again when the pasted text is itself indented.
        """
        rl = self.readline
        if rl is None or not prefill or _input_waiting():
            return self._input(prompt)
        # The startup hook runs before readline draws the line: the indent appears typed.
        rl.set_startup_hook(lambda: rl.insert_text(prefill))
        try:
            line = self._input(prompt)
        finally:
            rl.set_startup_hook(None)
        pasted = line[len(prefill) :]
        if "\n" in line and line.startswith(prefill) and pasted[:1] in (" ", "\t"):
            return pasted
        return line

    def _input(self, prompt: str) -> str:
        self._end_line()
        line = input(prompt)
        self.at_line_start = True
        return line

    @contextlib.contextmanager
    def _line_editing(self) -> Iterator[None]:
        """Completion and history for the console's lifetime, and the history file saved."""
        rl = self.readline
        if rl is None:
            yield
            return
        path = _history_path()
        previous = rl.get_completer()
        rl.set_history_length(_HISTORY_LENGTH)
        with contextlib.suppress(OSError):
            rl.read_history_file(path)
        if "libedit" in (rl.__doc__ or ""):
            rl.parse_and_bind("bind ^I rl_complete")
        else:
            rl.parse_and_bind("tab: complete")
            # A paste arrives as one piece, several lines in one, and is run as one cell.
            rl.parse_and_bind("set enable-bracketed-paste on")
        rl.set_completer(self._complete)
        try:
            yield
        finally:
            rl.set_completer(previous)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                rl.write_history_file(path)
            except OSError:
                pass  # a read-only home loses the history, not the session

    def _complete(self, word: str, state: int) -> str | None:
        """readline's completer: every match the kernel offers, one per ``state``."""
        if state == 0:
            self.matches = self._completions(word)
        return self.matches[state] if state < len(self.matches) else None

    def _completions(self, word: str) -> list[str]:
        rl = self.readline
        assert rl is not None
        line = str(rl.get_line_buffer())
        begin, end = int(rl.get_begidx()), int(rl.get_endidx())
        before = "".join(previous + "\n" for previous in self.lines)
        code = before + line
        try:
            reply = self.kc.complete(code, len(before) + end, timeout=_COMPLETE_TIMEOUT)
        except errors.RuntimelibError:
            return []  # no completions beats a traceback in the middle of a line
        return _readline_matches(reply.matches, code, reply.cursor_start, len(before) + begin, word)

    # -- while code runs -----------------------------------------------------------------------

    def _answer(self, prompt: str, password: bool) -> str:
        """input() in the kernel, answered at the terminal; Ctrl-C interrupts the kernel, and
        Ctrl-D is the end of input (EOFError in the kernel's code)."""
        self.ctrl_c.answering = True
        try:
            with self._plain_input():
                if password:
                    return getpass.getpass(prompt)
                return self._input(prompt)
        except KeyboardInterrupt:
            self._write("\n")
            # Interrupt first: an empty answer sent before it would let the code run on.
            self.ctrl_c.interrupt_now()
            return ""
        except EOFError:
            self._write("\n")
            raise
        finally:
            self.ctrl_c.answering = False

    @contextlib.contextmanager
    def _plain_input(self) -> Iterator[None]:
        """No completion (the kernel is busy) and no history (answers are not code)."""
        rl = self.readline
        if rl is None:
            yield
            return
        rl.set_completer(None)
        set_auto_history: Callable[[bool], None] | None = getattr(rl, "set_auto_history", None)
        if set_auto_history is not None:
            set_auto_history(False)
        try:
            yield
        finally:
            if set_auto_history is not None:
                set_auto_history(True)
            rl.set_completer(self._complete)
