"""The built-in Python kernel (``runtimelib-python``): no IPython, starts fast.

Code runs in a persistent namespace, in the main thread, so SIGINT interrupts anything
(``time.sleep`` included); the event loop serving the sockets runs in a thread of its own, so
control requests (interrupt, shutdown) and the heartbeat are answered while code runs. stdout
and stderr are published as they are written (a line at a time, or after a short pause for
partial lines); the last expression's value is the execute_result, rich through IPython's
display protocol. ``display``, ``update_display`` and ``clear_output`` are in the namespace;
``input()`` asks the frontend.

Run it with ``python -m runtimelib.kernel.python -f CONNECTION_FILE``.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import functools
import inspect
import linecache
import os
import platform
import queue
import signal
import sys
import threading
import traceback
import types
import uuid
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, TypeVar, cast

import anyio
import anyio.lowlevel
import anyio.to_thread

from ..media import MimeBundle
from ..messages import (
    ClearOutput,
    CommClose,
    CommMsg,
    CompleteReply,
    Content,
    DisplayData,
    ExecuteReply,
    HistoryReply,
    HistoryRequest,
    InspectReply,
    IsCompleteReply,
    LanguageInfo,
    Message,
    UpdateDisplayData,
)
from .base import CommTarget, Kernel, current_shell
from .publishing import current_request
from .python_comm import install_comms, message_dict
from .python_complete import complete, describe
from .python_display import DisplayHandle, install_ipython_display
from .python_io import CodeThread, Flusher, RoutedStream, Shield
from .python_source import cell_event_loop, ends_with_semicolon, history_reply, is_complete, name_at

__all__ = ["PythonKernel"]

T = TypeVar("T")

# After a shutdown, how long code that ignores the interrupt may run before the kernel
# process leaves without it.
_STUCK_CODE_GRACE = 1.0
_TOP_LEVEL_AWAIT = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT


class _AskExit:
    """``exit`` and ``quit`` in the namespace: called, they ask the frontend to leave."""

    def __init__(self, kernel: PythonKernel) -> None:
        self._kernel = kernel

    def __call__(self, keep_kernel: bool = False) -> None:
        self._kernel.ask_exit(keep_kernel)

    def __repr__(self) -> str:
        return "Use exit() or Ctrl-D (the console's end of input) to leave."


class PythonKernel(Kernel):
    """Python in a persistent namespace, without IPython."""

    implementation: ClassVar[str] = "runtimelib-python"
    language_info: ClassVar[LanguageInfo] = LanguageInfo(
        name="python",
        version=platform.python_version(),
        mimetype="text/x-python",
        file_extension=".py",
        pygments_lexer="python3",
        codemirror_mode={"name": "python", "version": 3},
        nbconvert_exporter="python",
    )
    banner: ClassVar[str] = f"Python {sys.version.split()[0]} (runtimelib kernel)"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.namespace: dict[str, Any] = {
            "__name__": "__main__",
            "__builtins__": builtins,
            "display": self.display_object,
            "update_display": self.update_display,
            "clear_output": self.clear_output_now,
            "help": self.help,
            "exit": _AskExit(self),
            "quit": _AskExit(self),
        }
        self.history: list[tuple[int, int, str, str | None]] = []
        # Where code runs: the main thread (see serve), and a thread per subshell.
        self._main = CodeThread(self)
        self._subshell_threads: dict[str, CodeThread] = {}
        self._routed = (RoutedStream(self._main, "stdout"), RoutedStream(self._main, "stderr"))
        self._redirect_lock = threading.Lock()
        self._redirects = 0
        self._saved_io: tuple[Any, ...] = ()
        self._interrupt_pending = False
        self._loop_token: Any = None
        self._spawner: anyio.abc.TaskGroup | None = None
        self.shield = Shield()
        # The event loop cells that await run on (made by the first one).
        self._cell_loop: Any = None
        self._code_done = threading.Event()
        # Code written for ipykernel displays through IPython's functions, and opens comms
        # (ipywidgets) through the comm package: make them ours.
        install_ipython_display(self)
        #: The comm package's manager, once the user's code imports it (see python_comm).
        self.comm_manager: Any = None
        install_comms(self, lambda manager: setattr(self, "comm_manager", manager))

    def serve(self) -> None:
        """Serve from a loop thread; run each cell's code here, in the main thread."""
        if os.name == "posix" and threading.current_thread() is threading.main_thread():
            # A plain handler: raise in the running code, or remember the interrupt for code
            # about to run.
            signal.signal(signal.SIGINT, self._on_sigint)
        failure: list[BaseException] = []

        def loop() -> None:
            try:
                anyio.run(self.run)
            except BaseException as exc:
                failure.append(exc)
            finally:
                self._main.stop()
                if self.shield.running_code:  # shutting down while a cell runs: end it
                    self.interrupt()
                    # Code that ignores interrupts would keep the process alive, serving
                    # no one: give it a moment, then leave without it.
                    if not self._code_done.wait(_STUCK_CODE_GRACE):
                        os._exit(0)

        thread = threading.Thread(target=loop, name="runtimelib-kernel-loop", daemon=True)
        thread.start()
        self._main.serve()
        self._code_done.set()
        thread.join()
        if failure:
            raise failure[0]

    async def run(self) -> None:
        self._loop_token = anyio.lowlevel.current_token()
        async with anyio.create_task_group() as spawner:
            self._spawner = spawner  # for tasks the main thread starts (input())
            await super().run()
            spawner.cancel_scope.cancel()

    async def _watch_signals(self) -> None:
        return  # SIGINT is handled in the main thread (see serve)

    def _on_sigint(self, signum: int, frame: types.FrameType | None) -> None:
        if self.shield.running_code:
            if self.shield.depth:
                self.shield.deferred = True  # raised when the shield is left
                return
            raise KeyboardInterrupt
        if self.shells is not None and self.shells.main.execute_scope is not None:
            self._interrupt_pending = True

    def interrupt(self) -> None:
        """An interrupt_request: SIGINT to the main thread, where the main shell's code runs
        (a subshell's code runs on, as in ipykernel)."""
        if threading.current_thread() is threading.main_thread():
            self._on_sigint(signal.SIGINT, None)
        else:
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)

    def subshell_ended(self, subshell_id: str) -> None:
        code_thread = self._subshell_threads.pop(subshell_id, None)
        if code_thread is not None:
            code_thread.stop()

    def _code_thread(self) -> CodeThread:
        """Where the request being handled runs code: its shell's thread."""
        shell = current_shell()
        if shell is None or shell.subshell_id is None:
            return self._main
        code_thread = self._subshell_threads.get(shell.subshell_id)
        if code_thread is None:
            code_thread = self._subshell_threads[shell.subshell_id] = CodeThread(self)
            # Named as ipykernel names its subshells' threads.
            code_thread.start(f"subshell-{shell.subshell_id}")
        return code_thread

    def _here(self) -> CodeThread:
        """The calling thread's CodeThread (threads that code starts: the main thread's)."""
        return CodeThread.current() or self._main

    def _redirect(self, on: bool) -> None:
        """While any code runs, stdout, stderr, input() and getpass() are the kernel's."""
        import getpass  # cheap; code asking for a password asks the frontend, as ipykernel's

        with self._redirect_lock:
            if on:
                if self._redirects == 0:
                    self._saved_io = (sys.stdout, sys.stderr, builtins.input, getpass.getpass)
                    sys.stdout, sys.stderr = self._routed
                    builtins.input = self._input
                    getpass.getpass = self._getpass
                self._redirects += 1
            else:
                self._redirects -= 1
                if self._redirects == 0:
                    sys.stdout, sys.stderr, builtins.input, getpass.getpass = self._saved_io

    async def _in_main_thread(self, job: Callable[[], T]) -> T:
        """Run ``job`` in the main thread and wait for it without blocking the loop."""
        return await self._run_in(self._main, job)

    async def _run_in(self, code_thread: CodeThread, job: Callable[[], T]) -> T:
        """Run ``job`` in ``code_thread`` and wait for it without blocking the loop."""
        done = threading.Event()
        outcome: list[Any] = []

        def run() -> None:
            try:
                outcome.append((True, job()))
            except BaseException as exc:
                outcome.append((False, exc))
            finally:
                done.set()

        code_thread.jobs.put(run)
        # Abandoned if the kernel stops meanwhile: serve() then interrupts the code.
        await anyio.to_thread.run_sync(done.wait, abandon_on_cancel=True)
        ok, value = outcome[0]
        if not ok:
            raise value
        return cast(T, value)

    def help(self, *args: Any) -> None:
        """``help(obj)`` shows the documentation in the frontend's pager (a "page" payload of
        the execute_reply, as IPython's ``obj?``); ``help()`` alone is Python's own.
        """
        if len(args) != 1:
            builtins.help(*args)
            return
        import pydoc  # only here: it is slow to import, and kernels should start fast

        text = pydoc.plain(pydoc.render_doc(args[0]))
        self._here().payloads.append({"source": "page", "data": {"text/plain": text}, "start": 0})

    # -- comms (ipywidgets) ---------------------------------------------------------------------

    def comm_parent(self) -> Message[Any] | None:
        """The message a comm's messages are published as children of."""
        return self._parent()

    def comm_target(self, target_name: str) -> CommTarget | None:
        """Targets registered with the kernel, else with the comm package (ipywidgets')."""
        found = super().comm_target(target_name)
        manager = self.comm_manager
        if found is not None or manager is None or target_name not in manager.targets:
            return found

        async def open_comm(message: Message[Any]) -> None:
            await self._comm_handler(message, manager.comm_open)

        return open_comm

    async def do_comm(self, message: Message[Content]) -> None:
        """The frontend's comm_msg and comm_close reach the comm package's comms."""
        manager = self.comm_manager
        content = message.content
        if manager is None or not isinstance(content, (CommMsg, CommClose)):
            return
        if content.comm_id not in manager.comms:
            return
        handler = manager.comm_msg if isinstance(content, CommMsg) else manager.comm_close
        await self._comm_handler(message, handler)

    async def _comm_handler(self, message: Message[Any], handler: Callable[..., Any]) -> None:
        """Run a comm package handler in the main thread, its outputs the message's children,
        as ipykernel runs it (a widget's callbacks print and display)."""
        code_thread = self._code_thread()
        await self._run_in(code_thread, functools.partial(self._comm_here, message, handler))

    def _comm_here(self, message: Message[Any], handler: Callable[..., Any]) -> None:
        here = self._here()
        here.begin(message)
        self._redirect(True)
        try:
            handler(None, None, message_dict(message))
        except Exception:
            traceback.print_exc()  # to the frontend: a widget's callback failed
        finally:
            self._redirect(False)
            here.flush()
            here.end()

    def ask_exit(self, keep_kernel: bool = False) -> None:
        """Ask the frontend to leave once this cell is done (an "ask_exit" payload, as
        IPython's ``exit()``); a console ends, and stops the kernel unless ``keep_kernel``."""
        self._here().payloads.append({"source": "ask_exit", "keepkernel": bool(keep_kernel)})

    # -- the display API in the namespace -------------------------------------------------------

    def show(
        self,
        obj: Any,
        *,
        display_id: str | None = None,
        update: bool = False,
        raw: bool = False,
        metadata: dict[str, Any] | None = None,
        include: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
    ) -> None:
        """Publish ``obj`` as display_data (or update_display_data); ``raw``: ``obj`` is a
        MIME bundle already. ``metadata``, ``include`` and ``exclude`` as IPython's display."""
        self._flush()
        if raw and isinstance(obj, dict):
            bundle = MimeBundle(obj)
        else:
            bundle = MimeBundle.from_object(obj, include=include, exclude=exclude)
        transient = {"display_id": display_id} if display_id else {}
        cls = UpdateDisplayData if update else DisplayData
        with self.shield:
            self.publish_now(
                cls(
                    data=bundle.data,
                    metadata={**bundle.metadata, **(metadata or {})},
                    transient=transient,
                ),
                self._parent(),
            )

    def display_object(
        self, *objs: Any, display_id: str | bool | None = None, raw: bool = False
    ) -> DisplayHandle | None:
        """Show objects richly; ``display_id=True`` makes a new id and returns a handle."""
        if display_id is True:
            display_id = uuid.uuid4().hex
        for obj in objs:
            self.show(obj, display_id=display_id or None, raw=raw)
        return DisplayHandle(self, display_id) if isinstance(display_id, str) else None

    def update_display(self, obj: Any, *, display_id: str, raw: bool = False) -> None:
        """Replace every output shown with ``display_id``."""
        self.show(obj, display_id=display_id, update=True, raw=raw)

    def clear_output_now(self, wait: bool = False) -> None:
        """Clear this cell's output (with ``wait``: just before the next output)."""
        self._flush()
        with self.shield:
            self.publish_now(ClearOutput(wait=wait), self._parent())

    def _parent(self) -> Message[Any] | None:
        return self._here().stdout.parent or current_request()

    def _flush(self) -> None:
        self._here().flush()

    # -- input() --------------------------------------------------------------------------------

    def _input(self, prompt: Any = "", password: bool = False) -> str:
        parent = self._parent()
        if not self._here().allow_stdin or parent is None:
            raise _StdinNotImplementedError("input() is not supported by this frontend")
        self._flush()
        # Asked by a task of the event loop, which reads the stdin socket. The answer comes
        # back through a SimpleQueue: waiting on it is safe to interrupt (Ctrl-C at a prompt).
        answers: queue.SimpleQueue[tuple[bool, Any]] = queue.SimpleQueue()

        async def ask() -> None:
            outcome: tuple[bool, Any] = (False, EOFError("the kernel is stopping"))
            try:
                value = await self.input(str(prompt), password=password, parent=parent)
                outcome = (True, value)
            except Exception as exc:
                outcome = (False, exc)
            finally:
                answers.put(outcome)

        import anyio.from_thread  # only here: slow to import, and input() is rare

        spawner = self._spawner
        if spawner is None:
            raise EOFError("the kernel is not serving")
        with self.shield:
            anyio.from_thread.run_sync(spawner.start_soon, ask, token=self._loop_token)
        ok, value = answers.get()
        if not ok:
            raise value
        return str(value)

    def _getpass(self, prompt: str = "Password: ", stream: Any = None) -> str:
        """getpass.getpass() while a cell runs: the frontend asks, without echoing."""
        return self._input(prompt, password=True)

    # -- execution ------------------------------------------------------------------------------

    async def do_execute(
        self,
        code: str,
        *,
        silent: bool,
        store_history: bool,
        user_expressions: dict[str, str],
        allow_stdin: bool,
    ) -> ExecuteReply:
        """Run the code in the namespace, in the main thread (or the subshell's thread)."""
        count = self.execution_count
        code_thread = self._code_thread()
        code_thread.begin(current_request(), allow_stdin)
        try:
            error, bundle, expressions = await self._run_in(
                code_thread,
                functools.partial(self._execute_here, code, count, silent, user_expressions),
            )
        finally:
            self._interrupt_pending = False
        output_text = None
        if bundle is not None:
            output_text = bundle.text
            await self.execute_result(bundle.data, bundle.metadata)
        if store_history and not silent:
            self.history.append((1, count, code, output_text))
        code_thread.end()
        if error is not None:
            tb = _format_traceback(error)
            ename, evalue = type(error).__name__, str(error)
            await self.error(ename, evalue, tb)
            return ExecuteReply(
                status="error", ename=ename, evalue=evalue, traceback=tb, execution_count=count
            )
        return ExecuteReply(
            execution_count=count, user_expressions=expressions, payload=code_thread.payloads
        )

    def _execute_here(
        self, code: str, count: int, silent: bool, user_expressions: dict[str, str]
    ) -> tuple[BaseException | None, MimeBundle | None, dict[str, Any]]:
        """The part of an execution that runs user code (in its shell's thread): the cell with
        stdout, stderr and input() redirected, the result's reprs, the user expressions.
        """
        here = self._here()
        main = here is self._main  # interrupts reach the main thread's code only
        flusher = Flusher([here.stdout, here.stderr])
        self._redirect(True)
        flusher.start()
        result: Any = None
        error: BaseException | None = None
        if main:
            self.shield.deferred = False
        try:
            if main:
                self.shield.running_code = True
                if self._interrupt_pending:  # SIGINT came after the request, before the code
                    raise KeyboardInterrupt
            result = self._run(code, count)
            if main:
                self.shield.running_code = False
        except BaseException as exc:  # KeyboardInterrupt and SystemExit are outputs too
            if main:
                self.shield.running_code = False
            error = exc
        finally:
            flusher.done.set()
            flusher.join()
            self._redirect(False)
            here.flush()
        bundle = None
        if error is None and result is not None and not silent:
            self.namespace["_"] = result
            bundle = MimeBundle.from_object(result)
        return error, bundle, self._user_expressions(user_expressions)

    def _run(self, code: str, count: int) -> Any:
        """Run a cell; its last expression's value, or None (also when a trailing ``;``
        hides it, as in IPython). ``await`` works at the top level of a cell."""
        filename = f"<cell {count}>"
        # Tracebacks show the cell's lines, as they do for files.
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        tree = ast.parse(code, filename, "exec", feature_version=None)
        last: ast.expr | None = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = tree.body.pop().value  # type: ignore[attr-defined]
        if tree.body:
            self._evaluate(compile(tree, filename, "exec", flags=_TOP_LEVEL_AWAIT))
        if last is not None:
            expression = ast.Expression(last)
            value = self._evaluate(compile(expression, filename, "eval", flags=_TOP_LEVEL_AWAIT))
            return None if ends_with_semicolon(code) else value
        return None

    def _evaluate(self, compiled: types.CodeType) -> Any:
        """Run compiled cell code; code that awaits runs on the cells' own event loop, kept
        from cell to cell (tasks a cell starts go on while later cells await)."""
        result = eval(compiled, self.namespace)
        if not compiled.co_flags & inspect.CO_COROUTINE:
            return result
        loop = self._cell_loop
        if loop is None:
            loop = self._cell_loop = cell_event_loop()
        task = loop.create_task(result)
        try:
            return loop.run_until_complete(task)
        except BaseException:
            # Interrupted while awaiting: the task must not be left half-run for the next cell.
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    loop.run_until_complete(task)
            raise

    def _user_expressions(self, expressions: dict[str, str]) -> dict[str, Any]:
        results: dict[str, Any] = {}
        for name, source in expressions.items():
            try:
                value = eval(source, self.namespace)
                bundle = MimeBundle.from_object(value)
                results[name] = {"status": "ok", "data": bundle.data, "metadata": bundle.metadata}
            except Exception as exc:
                results[name] = {
                    "status": "error",
                    "ename": type(exc).__name__,
                    "evalue": str(exc),
                    "traceback": _format_traceback(exc),
                }
        return results

    # -- introspection --------------------------------------------------------------------------

    async def do_complete(self, code: str, cursor_pos: int) -> CompleteReply:
        """Names in scope, attributes, modules, dict keys and paths (see python_complete)."""
        matches, start = complete(self.namespace, code, cursor_pos)
        return CompleteReply(matches=matches, cursor_start=start, cursor_end=cursor_pos)

    async def do_inspect(self, code: str, cursor_pos: int, detail_level: int) -> InspectReply:
        """Signature and docstring of the name at the cursor (no code is run, only lookups)."""
        return describe(self.namespace, name_at(code, cursor_pos), detail_level)

    async def do_is_complete(self, code: str) -> IsCompleteReply:
        """codeop's verdict, with the indent for the next line when incomplete."""
        return is_complete(code)

    async def do_history(self, request: HistoryRequest) -> HistoryReply:
        """This session's inputs (and outputs), by tail, range or search."""
        return history_reply(self.history, request)


class _StdinNotImplementedError(RuntimeError):
    """Named as in ipykernel, since code and tests look for this name."""


_StdinNotImplementedError.__name__ = "StdinNotImplementedError"
_StdinNotImplementedError.__qualname__ = "StdinNotImplementedError"


def _format_traceback(error: BaseException) -> list[str]:
    """The traceback lines of user code (the kernel's own frames left out)."""
    exc = traceback.TracebackException(type(error), error, error.__traceback__)
    if isinstance(error, SyntaxError) and str(error.filename).startswith("<cell "):
        # The cell itself does not parse: what parsed it (ast, compile) is no part of it.
        frames = []
    else:
        # Also the SIGINT handler's frame, where an interrupt's KeyboardInterrupt is raised,
        # and the streams' (the interrupt may come while code writes).
        here = os.path.dirname(__file__)
        frames = [frame for frame in exc.stack if os.path.dirname(frame.filename) != here]
    exc.stack = traceback.StackSummary.from_list(frames)
    return [line.rstrip("\n") for line in exc.format()]


def _main() -> None:
    PythonKernel.launch()


if __name__ == "__main__":
    _main()
