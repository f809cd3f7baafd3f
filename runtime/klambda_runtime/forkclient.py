"""The asyncio side of :mod:`klambda_runtime.forkserver`: ask for a fork, await exits."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from typing import Any

from klambda_runtime.errors import ForkServerError

UNKNOWN_RETURNCODE = 255  # the template died before it could tell us


class ForkClient:
    """Talks to one fork server over its ``SOCK_SEQPACKET`` socket."""

    def __init__(self, sock: socket.socket, *, server_pid: int) -> None:
        self.server_pid = server_pid
        self._sock = sock
        sock.setblocking(False)
        self._loop = asyncio.get_running_loop()
        self._next_id = 0
        self._replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._exits: dict[int, asyncio.Future[int]] = {}
        self._closed = False
        self._loop.add_reader(sock.fileno(), self._on_readable)

    @property
    def alive(self) -> bool:
        return not self._closed

    def _exit_future(self, pid: int) -> asyncio.Future[int]:
        fut = self._exits.get(pid)
        if fut is None:
            fut = self._exits[pid] = self._loop.create_future()
        return fut

    def _on_readable(self) -> None:
        while True:
            try:
                data = self._sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:
                self._lost()
                return
            message = json.loads(data)
            if "exit" in message:
                fut = self._exit_future(int(message["exit"]))
                if not fut.done():
                    fut.set_result(int(message["returncode"]))
                continue
            reply = self._replies.pop(int(message.get("id", -1)), None)
            if reply is not None and not reply.done():
                reply.set_result(message)

    def _lost(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
        err = ForkServerError(f"the fork server (pid {self.server_pid}) went away")
        for fut in self._replies.values():
            if not fut.done():
                fut.set_exception(err)
        self._replies.clear()
        for pid, exit_fut in self._exits.items():
            if not exit_fut.done():
                self._watch_orphan(pid, exit_fut)

    def _watch_orphan(self, pid: int, fut: asyncio.Future[int]) -> None:
        """The server is gone: learn about the (reparented) child's end through a pidfd."""
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            fut.set_result(UNKNOWN_RETURNCODE)
            return

        def done() -> None:
            self._loop.remove_reader(pidfd)
            os.close(pidfd)
            if not fut.done():
                fut.set_result(UNKNOWN_RETURNCODE)

        self._loop.add_reader(pidfd, done)

    def spawn_nowait(
        self, message: dict[str, Any], fds: list[int] | None = None
    ) -> asyncio.Future[dict[str, Any]]:
        """Send a fork request now (synchronously); the future gets the server's reply."""
        if self._closed:
            raise ForkServerError(f"the fork server (pid {self.server_pid}) is not running")
        self._next_id += 1
        request_id = self._next_id
        fut: asyncio.Future[dict[str, Any]] = self._loop.create_future()
        self._replies[request_id] = fut
        data = json.dumps({**message, "id": request_id}).encode()
        try:
            socket.send_fds(self._sock, [data], list(fds or []))
        except OSError as exc:
            self._replies.pop(request_id, None)
            raise ForkServerError(f"cannot reach the fork server: {exc}") from exc
        return fut

    async def pid_of(self, reply: asyncio.Future[dict[str, Any]]) -> int:
        message = await reply
        if "error" in message:
            raise ForkServerError(str(message["error"]))
        pid = int(message["pid"])
        self._exit_future(pid)
        return pid

    async def spawn(self, message: dict[str, Any], fds: list[int] | None = None) -> int:
        return await self.pid_of(self.spawn_nowait(message, fds))

    def exited(self, pid: int) -> asyncio.Future[int]:
        """A future with the child's Popen-style return code."""
        fut = self._exit_future(pid)
        if self._closed and not fut.done():
            self._watch_orphan(pid, fut)
        return fut

    def forget(self, pid: int) -> None:
        self._exits.pop(pid, None)

    def close(self) -> None:
        """Stop talking to the server; pending exits are then learnt through pidfds."""
        self._lost()


def watch_child(pid: int) -> asyncio.Future[int]:
    """Exit status of our own child through a pidfd: no threads, no SIGCHLD handler."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[int] = loop.create_future()
    pidfd = os.pidfd_open(pid)

    def readable() -> None:
        try:
            reaped, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            reaped, status = pid, UNKNOWN_RETURNCODE << 8
        if reaped == 0:
            return
        loop.remove_reader(pidfd)
        os.close(pidfd)
        if not fut.done():
            fut.set_result(os.waitstatus_to_exitcode(status))

    loop.add_reader(pidfd, readable)
    return fut
