"""Process-group bookkeeping shared by the harness and the node agent.

Every process we start gets its own session (pgid == pid). We remember (pid, start time) so a
later `down` (another process) only signals groups that are still ours, never a recycled pid.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import psutil

PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_start_time(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat (start time in clock ticks), or None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


try:  # loaded once here: the preexec_fn below must not dlopen in a forked child
    _LIBC: ctypes.CDLL | None = ctypes.CDLL("libc.so.6", use_errno=True)
except OSError:
    _LIBC = None


def die_with_parent() -> None:
    """preexec_fn: SIGKILL the child when the thread that started it dies.

    Only a prctl(2) call, so it is safe enough between fork and exec even with threads.
    """
    if _LIBC is not None:
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass(frozen=True)
class ProcRecord:
    name: str
    pid: int
    start_time: str
    log: str

    def alive(self) -> bool:
        st = proc_start_time(self.pid)
        if st is None or st != self.start_time:
            return False
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    def signal_group(self, sig: int) -> None:
        if proc_start_time(self.pid) != self.start_time:
            return
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def spawn(
    name: str,
    args: list[str],
    *,
    log: str,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
    tie_to_parent: bool = True,
) -> tuple[subprocess.Popen[bytes], ProcRecord]:
    with open(log, "ab") as out:
        p = subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=die_with_parent if tie_to_parent else None,  # noqa: PLW1509
        )
    st = proc_start_time(p.pid) or ""
    return p, ProcRecord(name=name, pid=p.pid, start_time=st, log=log)


def stop_group(
    rec: ProcRecord, *, grace: float = 10.0, popen: subprocess.Popen[bytes] | None = None
) -> None:
    """SIGTERM the process group, wait up to `grace`, then SIGKILL it; reap if we can.

    Without a Popen (another process started it) the group is only signalled while its leader
    still has the recorded start time, so a recycled pid is never hit.
    """
    ours = popen is not None or rec.alive()
    rec.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if popen is not None and popen.poll() is not None:
            break
        if popen is None and not rec.alive():
            break
        time.sleep(0.05)
    # The leader may be gone while other members of its group live on: SIGKILL the group.
    if ours:
        try:
            os.killpg(rec.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    if popen is not None:
        try:
            popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def descendants(pid: int) -> list[psutil.Process]:
    """All current descendants of `pid` (including ones that left its process group)."""
    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.Error:
        return []


def kill_stragglers(procs: list[psutil.Process]) -> None:
    """SIGKILL processes that are still the same processes (psutil checks the start time)."""
    for p in procs:
        try:
            p.kill()
        except psutil.Error:
            pass


def save_records(path: str, records: list[ProcRecord], extra: dict[str, object]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"processes": [asdict(r) for r in records], **extra}, f, indent=2)
    os.replace(tmp, path)


def load_records(path: str) -> tuple[list[ProcRecord], dict[str, object]]:
    with open(path) as f:
        data = json.load(f)
    recs = [ProcRecord(**r) for r in data.pop("processes")]
    return recs, data


def wait_until(
    check: Callable[[], object],
    *,
    timeout: float,
    interval: float = 0.2,
    what: str,
) -> object:
    """Poll `check` until it returns a truthy value; raise TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while True:
        try:
            value = check()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - reported on timeout
            last_exc = e
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_exc})" if last_exc else ""
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}{detail}")
        time.sleep(interval)
