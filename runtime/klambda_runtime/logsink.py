"""Where an environment's log goes: the agent's stdout, plus the per-invocation buffer."""

from __future__ import annotations

import os

from klambda_runtime.reports import tail

_KEEP = 64 * 1024


class LogSink:
    """Writes function output and platform lines to ``fd``; remembers the current invocation's."""

    def __init__(self, fd: int = 1) -> None:
        self.fd = fd
        self._buf: bytearray | None = None
        self._held = b""  # logged, but written out together with the next write

    def hold(self, text: str) -> None:
        """Log ``text`` now (it is in the invocation's tail at once) but write it out with
        the next write: START then costs no syscall of its own when the function prints
        nothing before END."""
        data = text.encode("utf-8", "replace")
        self._held += data
        if self._buf is not None:
            self._buf += data

    def write(self, data: bytes) -> None:
        self._write_out(self._held + data if self._held else data)
        self._held = b""
        if self._buf is not None:
            self._buf += data
            if len(self._buf) > _KEEP:
                del self._buf[: len(self._buf) - _KEEP // 2]

    def _write_out(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.fd, view)
            except BlockingIOError:
                continue
            except OSError:
                break  # nobody reads our log any more; never fail an invocation for it
            view = view[n:]

    def remember(self, data: bytes) -> None:
        """Add to the current invocation's log without writing it out (already written)."""
        if self._buf is not None:
            self._buf += data

    def line(self, text: str) -> None:
        self.write(text.encode("utf-8", "replace"))

    @property
    def active(self) -> bool:
        return self._buf is not None

    def begin(self) -> None:
        self._buf = bytearray()

    def flush(self) -> None:
        """Write out what :meth:`hold` kept back."""
        if self._held:
            held, self._held = self._held, b""
            self._write_out(held)

    def end(self) -> bytes:
        """The invocation's log tail; held lines stay held until :meth:`flush` (the agent
        flushes right after sending the result; any later write flushes them too)."""
        data, self._buf = bytes(self._buf or b""), None
        return tail(data)
