"""A fork server: a single-threaded template process that forks children on request.

Used twice with the same code:

* the **zygote** (one per launcher) forks *agents* — every import done, nothing started;
* the **runtime template** (one per Python environment, forked by its agent before the
  agent creates any thread, event loop or gRPC channel) forks *runtime processes*, so a
  runtime can be restarted after a crash or timeout without forking the threaded agent.

Protocol over an ``AF_UNIX``/``SOCK_SEQPACKET`` socket (one JSON message per packet,
file descriptors via ``SCM_RIGHTS``):

* request ``{"id": n, ...}`` (+ fds) → reply ``{"id": n, "pid": pid}`` or
  ``{"id": n, "error": "..."}``;
* whenever a child exits: ``{"exit": pid, "returncode": rc}`` (Popen convention).

This module is the server side and uses only the standard library; it must stay
importable and runnable without ever starting a thread.
"""

from __future__ import annotations

import errno
import json
import os
import select
import signal
import socket
import sys
import traceback
from collections.abc import Callable
from typing import Any

MAX_MESSAGE = 1 << 20
MAX_FDS = 4

ChildMain = Callable[[dict[str, Any], list[int]], int]


def _send(sock: socket.socket, message: dict[str, Any]) -> bool:
    try:
        sock.send(json.dumps(message).encode())
        return True
    except OSError:
        return False


def become_subreaper() -> bool:
    """Adopt orphaned descendants (Linux PR_SET_CHILD_SUBREAPER) so they get reaped here."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(36, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def _reap(sock: socket.socket, children: set[int]) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            children.clear()
            return
        if pid == 0:
            return
        if pid in children:  # (a subreaper also reaps adopted orphans: not reported)
            children.discard(pid)
            _send(sock, {"exit": pid, "returncode": os.waitstatus_to_exitcode(status)})


def _run_child(
    child_main: ChildMain, message: dict[str, Any], fds: list[int], close: list[int]
) -> None:
    """In the forked child: drop the server's state, run ``child_main``, never return."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        for fd in close:
            try:
                os.close(fd)
            except OSError:
                pass
        code = child_main(message, fds)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - report and exit; never fall back into the server
        try:
            traceback.print_exc()
        except Exception:  # noqa: BLE001
            pass
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001
                pass
        os._exit(code)


def serve(sock: socket.socket, child_main: ChildMain, *, kill_children_on_eof: bool) -> None:
    """Serve fork requests until the other end of ``sock`` closes."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    # A template ends when its owner hangs up, not on a signal meant for the group.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    children: set[int] = set()
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    poller.register(wake_r, select.POLLIN)
    try:
        while True:
            try:
                events = poller.poll()
            except InterruptedError:
                continue
            for fd, _ in events:
                if fd == wake_r:
                    try:
                        while os.read(wake_r, 512):
                            pass
                    except BlockingIOError:
                        pass
                    _reap(sock, children)
                    continue
                try:
                    data, fds, _flags, _addr = socket.recv_fds(sock, MAX_MESSAGE, MAX_FDS)
                except InterruptedError:
                    continue
                except OSError as exc:
                    if exc.errno in (errno.EAGAIN,):
                        continue
                    data, fds = b"", []
                if not data:
                    return
                message = json.loads(data)
                try:
                    pid = os.fork()
                except OSError as exc:
                    for f in fds:
                        os.close(f)
                    _send(sock, {"id": message.get("id"), "error": f"fork failed: {exc}"})
                    continue
                if pid == 0:
                    _run_child(child_main, message, fds, [sock.fileno(), wake_r, wake_w])
                children.add(pid)
                for f in fds:
                    os.close(f)
                _send(sock, {"id": message.get("id"), "pid": pid})
            _reap(sock, children)
    finally:
        if kill_children_on_eof:
            for pid in list(children):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        signal.set_wakeup_fd(-1)
