"""Terminal output: tables and a spinner (only on a TTY)."""

from __future__ import annotations

import itertools
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TextIO


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain aligned table (kubectl style)."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in cells]
    return "\n".join(lines)


@contextmanager
def spinner(message: str, *, stream: TextIO | None = None) -> Iterator[None]:
    """Shows ``message`` with a spinner on stderr while the block runs (TTY only)."""
    out = stream or sys.stderr
    if not out.isatty():
        yield
        return
    stop = threading.Event()

    def spin() -> None:
        for frame in itertools.cycle("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"):
            out.write(f"\r{frame} {message}")
            out.flush()
            if stop.wait(0.1):
                break
        out.write("\r" + " " * (len(message) + 2) + "\r")
        out.flush()

    thread = threading.Thread(target=spin, daemon=True)
    # Appear only when waiting is noticeable.
    timer = threading.Timer(0.3, thread.start)
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        stop.set()
        if thread.is_alive():
            thread.join(1.0)
