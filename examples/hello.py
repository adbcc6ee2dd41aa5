# A first run: `python -m runtimelib run examples/hello.py` starts a kernel (python3 if it is
# installed, else the built-in runtimelib-python), runs this file in it and streams what it
# prints, as it prints it.
import os
import platform
import sys
import time

print(f"Hello from a kernel: {platform.python_implementation()} {platform.python_version()}")
print(f"kernel process {os.getpid()}, working directory {os.getcwd()}")
for step in range(1, 4):
    print(f"streaming, step {step} of 3", flush=True)
    time.sleep(0.2)
print("this line went to stderr", file=sys.stderr)


class Fraction:
    """An object with a rich (HTML) form and a plain-text one, as notebooks show them."""

    def __init__(self, top: int, bottom: int) -> None:
        self.top, self.bottom = top, bottom

    def __repr__(self) -> str:
        return f"{self.top}/{self.bottom}"

    def _repr_html_(self) -> str:
        return f"<sup>{self.top}</sup>&frasl;<sub>{self.bottom}</sub>"


Fraction(6, 7)
