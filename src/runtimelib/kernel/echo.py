"""The echo kernel (``runtimelib-echo``): a scriptable kernel for testing frontends.

Code is echoed to stdout. Lines starting with ``%`` script a canned behaviour instead::

    %stdout TEXT / %stderr TEXT     a stream
    %result TEXT                    an execute_result (text/plain)
    %html HTML / %markdown TEXT     display_data
    %png                            display_data with a small PNG image
    %display ID TEXT                display_data with a display_id
    %update ID TEXT                 update_display_data for that id
    %clear [wait]                   clear_output
    %error NAME VALUE               raise: an error output and an error reply
    %sleep SECONDS                  wait (an interrupt cancels it)
    %input PROMPT / %password PROMPT  ask for input and print the answer
    %flood N                        N stream messages, as fast as possible
    %crash [CODE]                   exit the process at once
    %hang                           block the kernel for ever (only a kill ends it)
    %ignore-sigterm                 ignore SIGTERM from now on

Run it with ``python -m runtimelib.kernel.echo -f CONNECTION_FILE``.
"""

from __future__ import annotations

import base64
import os
import signal
import time
from typing import Any, ClassVar

import anyio

from ..messages import ExecuteReply, IsCompleteReply, LanguageInfo
from .base import Kernel
from .publishing import StdinNotAllowedError

__all__ = ["PNG_BYTES", "EchoKernel"]

# A valid 1x1 PNG, so frontends have a real image to decode.
PNG_BYTES = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGP4z8DwHwAFAAH/iZk9HQAAAABJRU5ErkJggg=="
)


class _ScriptError(Exception):
    def __init__(self, ename: str, evalue: str) -> None:
        super().__init__(evalue)
        self.ename, self.evalue = ename, evalue


class EchoKernel(Kernel):
    """Echoes its code; ``%`` lines script outputs, errors, delays, input and failures."""

    implementation: ClassVar[str] = "runtimelib-echo"
    language_info: ClassVar[LanguageInfo] = LanguageInfo(
        name="echo", mimetype="text/plain", file_extension=".txt"
    )
    banner: ClassVar[str] = "runtimelib echo kernel: code comes back as output"

    async def do_execute(
        self,
        code: str,
        *,
        silent: bool,
        store_history: bool,
        user_expressions: dict[str, str],
        allow_stdin: bool,
    ) -> ExecuteReply:
        """Echo plain lines; run ``%`` lines."""
        try:
            echo: list[str] = []
            for line in code.splitlines():
                if line.startswith("%"):
                    if echo:
                        await self.stream("\n".join(echo) + "\n")
                        echo.clear()
                    await self._command(line[1:].strip())
                else:
                    echo.append(line)
            if echo and not silent:
                await self.stream("\n".join(echo) + "\n")
        except StdinNotAllowedError as exc:
            return await self._fail(_ScriptError("StdinNotImplementedError", str(exc)))
        except _ScriptError as exc:
            return await self._fail(exc)
        return ExecuteReply(execution_count=self.execution_count)

    async def _fail(self, exc: _ScriptError) -> ExecuteReply:
        traceback = [f"{exc.ename}: {exc.evalue}"]
        await self.error(exc.ename, exc.evalue, traceback)
        return ExecuteReply(status="error", ename=exc.ename, evalue=exc.evalue, traceback=traceback)

    async def _command(self, line: str) -> None:
        name, _, rest = line.partition(" ")
        handler = self._COMMANDS.get(name)
        if handler is None:
            raise _ScriptError("UnknownCommand", f"%{name} is not an echo kernel command")
        await handler(self, rest)

    async def _stdout(self, rest: str) -> None:
        await self.stream(rest + "\n")

    async def _stderr(self, rest: str) -> None:
        await self.stream(rest + "\n", "stderr")

    async def _result(self, rest: str) -> None:
        await self.execute_result({"text/plain": rest})

    async def _html(self, rest: str) -> None:
        await self.display({"text/html": rest, "text/plain": "<HTML>"})

    async def _markdown(self, rest: str) -> None:
        await self.display({"text/markdown": rest, "text/plain": rest})

    async def _png(self, rest: str) -> None:
        png = base64.b64encode(PNG_BYTES).decode("ascii")
        await self.display({"image/png": png, "text/plain": "<1x1 image>"})

    async def _display(self, rest: str) -> None:
        display_id, _, text = rest.partition(" ")
        await self.display({"text/plain": text}, display_id=display_id)

    async def _update(self, rest: str) -> None:
        display_id, _, text = rest.partition(" ")
        await self.display({"text/plain": text}, display_id=display_id, update=True)

    async def _clear(self, rest: str) -> None:
        await self.clear_output(wait=rest.strip() == "wait")

    async def _error(self, rest: str) -> None:
        ename, _, evalue = rest.partition(" ")
        raise _ScriptError(ename or "Error", evalue)

    async def _sleep(self, rest: str) -> None:
        await anyio.sleep(float(rest or "1"))

    async def _input(self, rest: str, password: bool = False) -> None:
        answer = await self.input(rest, password=password)
        await self.stream(answer + "\n")

    async def _password(self, rest: str) -> None:
        await self._input(rest, password=True)

    async def _flood(self, rest: str) -> None:
        for number in range(int(rest or "1000")):
            await self.stream(f"{number}\n")

    async def _crash(self, rest: str) -> None:
        os._exit(int(rest or "1"))

    async def _hang(self, rest: str) -> None:
        while True:  # blocks the event loop: nothing but a signal that kills ends this
            time.sleep(3600)

    async def _ignore_sigterm(self, rest: str) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)

    _COMMANDS: ClassVar[dict[str, Any]] = {
        "stdout": _stdout,
        "stderr": _stderr,
        "result": _result,
        "html": _html,
        "markdown": _markdown,
        "png": _png,
        "display": _display,
        "update": _update,
        "clear": _clear,
        "error": _error,
        "sleep": _sleep,
        "input": _input,
        "password": _password,
        "flood": _flood,
        "crash": _crash,
        "hang": _hang,
        "ignore-sigterm": _ignore_sigterm,
    }

    async def do_is_complete(self, code: str) -> IsCompleteReply:
        """A trailing backslash asks for another line."""
        if code.endswith("\\"):
            return IsCompleteReply(status="incomplete", indent="")
        return IsCompleteReply(status="complete")


if __name__ == "__main__":
    EchoKernel.launch()
