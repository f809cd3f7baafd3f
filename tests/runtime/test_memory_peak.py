"""``ProcessMemory.peak`` (Max Memory Used): VmHWM of a real child process — a transient
peak (allocated, touched, freed back to the kernel between two reads) is still reported."""

from __future__ import annotations

import subprocess
import sys

from klambda_runtime.memory import ProcessMemory

CHILD = r"""
import sys
sys.stdout.write("ready\n"); sys.stdout.flush()
sys.stdin.readline()
block = bytearray(80 * 1024 * 1024)  # touched: 80 MB resident
del block  # freed back to the kernel (mmap'd allocation)
sys.stdout.write("done\n"); sys.stdout.flush()
sys.stdin.readline()
"""


def test_transient_peak_is_seen_and_idle_reads_are_stable() -> None:
    proc = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        assert proc.stdout.readline() == "ready\n"
        mem = ProcessMemory(proc.pid)
        before = mem.peak()
        assert 0 < before < 60 * 1024 * 1024
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == "done\n"
        assert mem.rss() < 60 * 1024 * 1024  # the block is gone again...
        assert mem.peak() >= before + 75 * 1024 * 1024  # ...but its peak is reported
        mem.close()
    finally:
        proc.kill()
        proc.wait()
