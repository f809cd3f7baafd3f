"""A fork server: a single-threaded template process that forks children on request.

Used three times with the same code:

* the **zygote** (one per launcher) forks *agents* for the launcher, and *runtime
  processes* for those agents: every import done, nothing started, so both are forked
  from a clean process (see :mod:`klambda_runtime.zygote`);
* the **runtime template** (one per environment when there is no zygote, e.g. in a pod
  started by Kubernetes) is forked by the agent before it creates any thread, event loop
  or gRPC channel, and forks that environment's runtime processes;
* the **runtime server** (one per other Python version, under the zygote: see
  :mod:`klambda_runtime.runtime_server`) forks runtimes on that interpreter for the
  requests the zygote forwards to it.

Protocol over ``AF_UNIX``/``SOCK_SEQPACKET`` sockets (one JSON message per packet, file
descriptors via ``SCM_RIGHTS``):

* request ``{"id": n, "kind": ..., ...}`` (+ fds) → reply ``{"id": n, "pid": pid}`` or
  ``{"id": n, "error": "..."}``;
* whenever a child exits: ``{"exit": pid, "returncode": rc}`` (Popen convention) to the
  socket that asked for it.

A request of a kind listed in ``channel_kinds`` (the zygote's ``agent``) gets a private
channel: a new socket pair whose one end the child inherits and whose other end the
server serves like any client. Requests arriving on such a channel default to
``channel_default_kind`` (``runtime``) and carry ``owner_pgid``, the process group of the
child that owns the channel, so runtimes join their agent's group. When a channel closes
(its agent died), the server kills the children it spawned for it.

A ``router`` (the zygote's :class:`klambda_runtime.runtime_servers.RuntimeServers`) may
send a request to an **upstream**: another fork server (e.g. a runtime server on another
interpreter) that forks the child instead. The server relays the upstream's reply and the
child's exit to the client with the client's own ids, asks the upstream to kill those
children when the client's channel closes (``{"kill": [pids]}``, a control message every
server accepts for its own children), and re-routes the requests an upstream never
answered if it goes away (the router then picks a fallback).

Every child of a kind that is not a channel kind (a runtime), forked here or by an
upstream, gets a **gate**: the read end of a pipe (``message["gate"]``: its index in the
fds) whose write end the server closes only once the reply with the child's pid has been
sent (relayed) to whoever asked. The child (:func:`klambda_runtime.templates.wait_gate`)
waits for that EOF before it talks to its agent, so the agent always knows the pid first
(under a burst a warm runtime otherwise reached its agent's Runtime API before the pid,
and the agent, not knowing whose init that was, waited 10 s for Lambda's init limit).

Standard library only; it must never start a thread.
"""

from __future__ import annotations

import array
import errno
import json
import os
import select
import signal
import socket
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

MAX_MESSAGE = 1 << 20
MAX_FDS = 4
BATCH = 64  # requests served from one client per wake-up at most

# child_main(message, fds, channel) -> exit status; channel is the child's end of its
# private channel (or None).
ChildMain = Callable[[dict[str, Any], list[int], "socket.socket | None"], int]


@dataclass(eq=False)
class _Client:
    sock: socket.socket
    default_kind: str
    owner_pgid: int | None = None
    children: set[int] = field(default_factory=set)
    forwarded: set[int] = field(default_factory=set)  # children an upstream forked for us


@dataclass(eq=False)
class Upstream:
    """Another fork server requests can be forwarded to (made by a :class:`Router`)."""

    sock: socket.socket
    pid: int
    name: str = ""
    answered: bool = False  # it has answered at least one request (it started fine)
    closed: bool = False
    next_id: int = 0
    # upstream request id -> (client, the client's request id, message, fds kept open)
    pending: dict[int, tuple[_Client, Any, dict[str, Any], list[int]]] = field(default_factory=dict)
    # upstream request id -> write end of that request's gate (see Server.forward)
    gates: dict[int, int] = field(default_factory=dict)


class Router(Protocol):
    def route(self, kind: str, message: dict[str, Any]) -> str | Upstream:
        """The local kind to fork for this request, or the upstream to forward it to."""

    def lost(self, upstream: Upstream) -> None:
        """``upstream`` went away (EOF on its socket)."""

    def fds(self) -> list[int]:
        """The router's own descriptors (upstream sockets), closed in every child."""


def set_process_name(name: str) -> None:
    """Name the process for ps/top (``comm``, 15 bytes); forks otherwise all look alike."""
    try:
        with open("/proc/self/comm", "w") as f:
            f.write(name[:15])
    except OSError:
        pass


def become_subreaper() -> bool:
    """Adopt orphaned descendants (Linux PR_SET_CHILD_SUBREAPER) so they get reaped here."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(36, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def _recv_nowait(sock: socket.socket) -> tuple[bytes, list[int]]:
    """One packet and its descriptors, without blocking (BlockingIOError when there is
    none; socket.recv_fds ignores its flags before Python 3.12)."""
    fds = array.array("i")
    data, ancdata, _flags, _addr = sock.recvmsg(
        MAX_MESSAGE, socket.CMSG_LEN(MAX_FDS * fds.itemsize), socket.MSG_DONTWAIT
    )
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
    return data, list(fds)


def _send(sock: socket.socket, message: dict[str, Any]) -> bool:
    try:
        sock.send(json.dumps(message).encode())
        return True
    except OSError:
        return False


def _run_child(
    child_main: ChildMain,
    message: dict[str, Any],
    fds: list[int],
    channel: socket.socket | None,
    close: list[int],
) -> None:
    """In the forked child: drop the server's state, run ``child_main``, never return."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        for fd in close:
            try:
                os.close(fd)
            except OSError:
                pass
        code = child_main(message, fds, channel)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - report and exit; never fall back into the server
        try:
            traceback.print_exc()
        except Exception:  # noqa: BLE001, S110 - stderr may be gone; exiting anyway
            pass
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001, S110 - nothing left to report to
                pass
        os._exit(code)


class _Server:
    def __init__(
        self,
        sock: socket.socket,
        handlers: Mapping[str, ChildMain],
        *,
        default_kind: str,
        channel_kinds: frozenset[str],
        channel_default_kind: str,
        router: Router | None = None,
    ) -> None:
        self.handlers = handlers
        self.router = router
        self.upstreams: dict[int, Upstream] = {}  # socket fd -> upstream
        self.forwarded: dict[int, tuple[_Client, Upstream]] = {}  # pid -> who asked, where
        self.channel_kinds = channel_kinds
        self.channel_default_kind = channel_default_kind
        self.main = _Client(sock, default_kind)
        self.clients: dict[int, _Client] = {sock.fileno(): self.main}
        self.owner: dict[int, _Client] = {}  # child pid -> client that asked for it
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        self.poller = select.poll()
        self.poller.register(sock.fileno(), select.POLLIN)
        self.poller.register(self.wake_r, select.POLLIN)

    def _server_fds(self) -> list[int]:
        routed = self.router.fds() if self.router is not None else []
        gates = [g for up in self.upstreams.values() for g in up.gates.values()]
        return [*self.clients, *self.upstreams, *routed, *gates, self.wake_r, self.wake_w]

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            client = self.owner.pop(pid, None)
            if client is None:
                # An adopted orphan (we are a subreaper). If an upstream that died had
                # forked it for a client, that client still waits for its exit.
                if pid in self.forwarded:
                    self._forwarded_exit(pid, os.waitstatus_to_exitcode(status))
                continue
            client.children.discard(pid)
            if client.sock.fileno() in self.clients:
                returncode = os.waitstatus_to_exitcode(status)
                _send(client.sock, {"exit": pid, "returncode": returncode})

    def drop(self, client: _Client) -> None:
        """A channel closed: its owner is gone, so are the children it asked for."""
        self.poller.unregister(client.sock.fileno())
        del self.clients[client.sock.fileno()]
        for pid in list(client.children):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        by_upstream: dict[int, list[int]] = {}
        for pid in client.forwarded:
            _client, upstream = self.forwarded[pid]
            if upstream.closed:  # reparented to us (or gone): ours to kill
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            else:
                by_upstream.setdefault(upstream.sock.fileno(), []).append(pid)
        for fd, pids in by_upstream.items():
            _send(self.upstreams[fd].sock, {"kill": pids})
        client.sock.close()

    def handle(self, client: _Client) -> bool | None:
        """One request from ``client``; False when the main socket closed, None when there
        was none waiting."""
        try:
            data, fds = _recv_nowait(client.sock)
        except InterruptedError:
            return True
        except OSError as exc:
            if exc.errno == errno.EAGAIN:
                return None
            data, fds = b"", []
        if not data:
            if client is self.main:
                return False
            self.drop(client)
            return True
        message = json.loads(data)
        if "kill" in message:  # from our owner (a router forwarding to us): our children only
            for f in fds:
                os.close(f)
            for pid in message["kill"]:
                if pid in self.owner:
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            return True
        self.dispatch(client, message, fds)
        return True

    def dispatch(self, client: _Client, message: dict[str, Any], fds: list[int]) -> None:
        """Fork for ``message`` here, or forward it to the upstream the router picks."""
        kind = str(message.get("kind") or client.default_kind)
        if client.owner_pgid is not None:
            message["owner_pgid"] = client.owner_pgid
        if self.router is not None:
            routed = self.router.route(kind, message)
            if isinstance(routed, Upstream):
                self.forward(routed, client, message, fds)
                return
            kind = routed
        handler = self.handlers.get(kind)
        if handler is None:
            for f in fds:
                os.close(f)
            _send(client.sock, {"id": message.get("id"), "error": f"unknown request kind {kind!r}"})
            return
        ours = theirs = None
        if kind in self.channel_kinds:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        gate = -1
        if kind not in self.channel_kinds and "gate" not in message:
            # A runtime waits for the reply to be sent before it talks to its agent (see
            # forward()): under load it could otherwise run before this process is
            # scheduled again to send it.
            gate_r, gate = os.pipe()
            message = {**message, "gate": len(fds)}
            fds = [*fds, gate_r]
        try:
            pid = os.fork()
        except OSError as exc:
            if gate >= 0:
                os.close(gate)
            for f in fds:
                os.close(f)
            for s in (ours, theirs):
                if s is not None:
                    s.close()
            _send(client.sock, {"id": message.get("id"), "error": f"fork failed: {exc}"})
            return
        if pid == 0:
            close = self._server_fds() + ([ours.fileno()] if ours is not None else [])
            _run_child(handler, message, fds, theirs, [*close, gate] if gate >= 0 else close)
        for f in fds:
            os.close(f)
        client.children.add(pid)
        self.owner[pid] = client
        if ours is not None and theirs is not None:
            # A channel's owner leads its own process group (its children join it). Set it
            # here too, as shells do, so the group exists when the reply is read: a client
            # that killpg()s the pid at once would otherwise miss a child that had not run
            # its own setpgid yet, and that child would live on.
            try:
                os.setpgid(pid, pid)
            except OSError:
                pass  # it did it itself already, or is gone
            theirs.close()
            channel = _Client(ours, self.channel_default_kind, owner_pgid=pid)
            self.clients[ours.fileno()] = channel
            self.poller.register(ours.fileno(), select.POLLIN)
        _send(client.sock, {"id": message.get("id"), "pid": pid})
        if gate >= 0:
            os.close(gate)  # the child may go on: its owner has been told its pid

    # ------------------------------------------------------------------ upstreams
    def forward(
        self, upstream: Upstream, client: _Client, message: dict[str, Any], fds: list[int]
    ) -> None:
        fd = upstream.sock.fileno()
        if fd not in self.upstreams:
            self.upstreams[fd] = upstream
            self.poller.register(fd, select.POLLIN)
        upstream.next_id += 1
        upstream.pending[upstream.next_id] = (client, message.get("id"), message, fds)
        # The gate: a pipe whose read end the forked child gets (message["gate"] is its
        # index in the fds) and waits on (EOF) before it talks to its client. We close the
        # write end only after relaying the upstream's reply, so the client always learns
        # the child's pid before the child can reach it (a runtime from a warm upstream is
        # otherwise at the agent's Runtime API before the relayed reply is, and the agent
        # cannot tie its init to a process it does not know yet).
        gate_r, gate_w = os.pipe()
        upstream.gates[upstream.next_id] = gate_w
        data = json.dumps({**message, "id": upstream.next_id, "gate": len(fds)}).encode()
        try:
            socket.send_fds(upstream.sock, [data], [*fds, gate_r])
        except OSError:
            self.lose(upstream)  # re-routes this request too
        finally:
            os.close(gate_r)

    def _forwarded_exit(self, pid: int, returncode: int) -> None:
        client, _upstream = self.forwarded.pop(pid)
        client.forwarded.discard(pid)
        if client.sock.fileno() in self.clients:
            _send(client.sock, {"exit": pid, "returncode": returncode})

    def from_upstream(self, upstream: Upstream) -> None:
        try:
            data = upstream.sock.recv(MAX_MESSAGE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.lose(upstream)
            return
        message = json.loads(data)
        if "exit" in message:
            pid = int(message["exit"])
            if pid in self.forwarded:
                self._forwarded_exit(pid, int(message["returncode"]))
            return
        upstream_id = int(message.get("id", -1))
        gate = upstream.gates.pop(upstream_id, None)
        try:
            self._relay(upstream, upstream.pending.pop(upstream_id, None), message)
        finally:
            if gate is not None:
                os.close(gate)  # the child may go on now: its client knows its pid

    def _relay(
        self,
        upstream: Upstream,
        entry: tuple[_Client, Any, dict[str, Any], list[int]] | None,
        message: dict[str, Any],
    ) -> None:
        if entry is None:
            return
        client, client_id, _message, fds = entry
        for f in fds:
            os.close(f)
        upstream.answered = True
        if "pid" in message:
            pid = int(message["pid"])
            self.forwarded[pid] = (client, upstream)
            client.forwarded.add(pid)
        if client.sock.fileno() in self.clients:
            _send(client.sock, {**message, "id": client_id})
        elif "pid" in message:  # its client is gone already
            _send(upstream.sock, {"kill": [message["pid"]]})

    def lose(self, upstream: Upstream) -> None:
        """An upstream went away: forget it, re-route what it never answered."""
        if upstream.closed:
            return
        upstream.closed = True
        fd = upstream.sock.fileno()
        if self.upstreams.pop(fd, None) is not None:
            self.poller.unregister(fd)
        upstream.sock.close()
        if self.router is not None:
            self.router.lost(upstream)
        pending, upstream.pending = upstream.pending, {}
        gates, upstream.gates = upstream.gates, {}
        for gate in gates.values():
            os.close(gate)
        for client, client_id, message, fds in pending.values():
            if client.sock.fileno() not in self.clients:
                for f in fds:
                    os.close(f)
                continue
            self.dispatch(client, {**message, "id": client_id}, fds)

    def run(self) -> None:
        while True:
            try:
                events = self.poller.poll()
            except InterruptedError:
                continue
            for fd, _ in events:
                if fd == self.wake_r:
                    try:
                        while os.read(self.wake_r, 512):
                            pass
                    except BlockingIOError:
                        pass
                    continue
                upstream = self.upstreams.get(fd)
                if upstream is not None:
                    self.from_upstream(upstream)
                    continue
                client = self.clients.get(fd)
                # Everything this client queued (a burst of starts), not one request per
                # poll: forks back to back, before the children compete for the CPU.
                for _ in range(BATCH if client is not None else 0):
                    handled = self.handle(client)  # type: ignore[arg-type]
                    if handled is False:
                        return
                    if handled is None or fd not in self.clients:
                        break
            self.reap()


def serve(
    sock: socket.socket,
    handlers: Mapping[str, ChildMain],
    *,
    default_kind: str,
    kill_children_on_eof: bool,
    channel_kinds: frozenset[str] = frozenset(),
    channel_default_kind: str = "",
    router: Router | None = None,
) -> None:
    """Serve fork requests until the other end of ``sock`` closes."""
    server = _Server(
        sock,
        handlers,
        default_kind=default_kind,
        channel_kinds=channel_kinds,
        channel_default_kind=channel_default_kind,
        router=router,
    )
    signal.set_wakeup_fd(server.wake_w)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    # A template ends when its owner hangs up, not on a signal meant for the group.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        server.run()
    finally:
        if kill_children_on_eof:
            for pid in list(server.owner):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        signal.set_wakeup_fd(-1)
