"""One runtime process of an environment and what the agent knows about it: its exit,
its init, its log pipe (read without blocking, drained before each END) and its memory.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess

from klambda_runtime import memory, reports
from klambda_runtime.logsink import LogSink
from klambda_runtime.outcomes import InitOutcome


class RuntimeProcess:
    def __init__(
        self,
        pid: int,
        exited: asyncio.Future[int],
        log_fd: int,
        started: float,
        *,
        sink: LogSink,
    ) -> None:
        self.pid = pid
        self.exited = exited
        self.log_fd = log_fd
        self.started = started
        self.sink = sink
        self._loop = asyncio.get_running_loop()
        self.init: asyncio.Future[InitOutcome] = self._loop.create_future()
        self.init_log = bytearray()  # what the runtime printed during init (last 4 KB)
        self.peak_rss = 0
        self.tree: list[int] = []
        self.tree_scanned = started  # first descendant scan after tree_scan_s of activity
        self.sampler: asyncio.TimerHandle | None = None
        self.popen: subprocess.Popen[bytes] | None = None
        self.memory = memory.ProcessMemory(pid) if pid > 0 else None

    # ------------------------------------------------------------------ log pipe
    def attach_log(self) -> None:
        if self.log_fd >= 0:
            self._loop.add_reader(self.log_fd, self._read_log)

    def _read_log(self) -> None:
        try:
            data = os.read(self.log_fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self._got_log(data)
            return
        self.close_log()

    def _got_log(self, data: bytes) -> None:
        self.sink.write(data)
        if not self.init.done() or self.init.result().error_type:
            self.init_log += data
            del self.init_log[: -reports.LOG_TAIL_BYTES]

    def drain_log(self) -> None:
        """Everything the runtime wrote before answering, so it lands in this invocation."""
        while self.log_fd >= 0:
            try:
                data = os.read(self.log_fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self.close_log()
                return
            self._got_log(data)

    def close_log(self) -> None:
        if self.log_fd >= 0:
            self._loop.remove_reader(self.log_fd)
            os.close(self.log_fd)
            self.log_fd = -1

    # ------------------------------------------------------------------ memory
    def rescan_tree(self, now: float) -> None:
        self.tree = memory.descendants(self.pid)
        self.tree_scanned = now

    def sample_rss(self) -> int:
        """Current RSS of the runtime and its known descendants; updates the peak."""
        own = self.memory.rss() if self.memory is not None else 0
        rss = own + sum(memory.rss_bytes(p) for p in self.tree)
        self.peak_rss = max(self.peak_rss, rss)
        return rss

    def max_memory_mb(self) -> int:
        peak = max(self.peak_rss, self.memory.peak() if self.memory is not None else 0)
        return reports.memory_mb(peak)

    def close_memory(self) -> None:
        if self.memory is not None:
            self.memory.close()

    # ------------------------------------------------------------------ signals
    def kill_tree(self, sig: signal.Signals) -> None:
        if self.pid <= 0 or self.exited.done():
            return
        for pid in [self.pid, *memory.descendants(self.pid)]:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
