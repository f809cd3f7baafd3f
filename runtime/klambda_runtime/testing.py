"""A small but real gateway for tests and benchmarks: a grpc.aio server of environment.proto.

It registers agents, hands them invocations one at a time and collects results, exactly
like the real gateway's data path does, but with none of its policy. Tests and
``bench/runtime_*.py`` drive real agents through it.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any, Self

import grpc
from klambda_proto import environment_pb2 as pb
from klambda_proto import environment_pb2_grpc as pb_grpc
from klambda_proto.lane import HEADER_SIZE, PREFACE, frame


class _LaneContext:
    """The two calls ``_serve_stream`` makes on a gRPC context, over a lane connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self) -> Any:
        try:
            header = await self._reader.readexactly(HEADER_SIZE)
            body = await self._reader.readexactly(int.from_bytes(header[1:], "big"))
        except (asyncio.IncompleteReadError, ConnectionError):
            return grpc.aio.EOF
        return pb.AgentMessage.FromString(body)

    async def write(self, message: Any) -> None:
        self._writer.write(frame(message.SerializeToString()))
        await self._writer.drain()


@dataclass
class Connection:
    """What the test gateway knows about one connected environment."""

    environment_id: str
    register: Any
    outbox: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    ready_message: Any = None
    draining: bool = False
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    results: dict[str, asyncio.Future[Any]] = field(default_factory=dict)
    via: str = "grpc"  # or "lane"


class TestGateway(pb_grpc.EnvironmentGatewayServicer):  # type: ignore[misc]
    """``async with TestGateway() as gw: ...``; ``gw.address`` is what agents dial."""

    __test__ = False  # not a pytest test class

    def __init__(self, port: int = 0, *, lane: bool = False, lane_port: int = 0) -> None:
        self._port = port
        self.address = ""
        self.server: grpc.aio.Server | None = None
        # optionally also the lane (klambda_proto.lane) on TCP: agents given
        # ``lane_address`` (EnvironmentSpec.lane) hold their stream there
        self._lane = lane
        self.lane_port = lane_port
        self.lane_address = ""
        self.lane_server: asyncio.Server | None = None
        self._lane_tasks: set[asyncio.Task[Any]] = set()
        self.connections: dict[str, Connection] = {}
        self.registrations = 0
        self._changed = asyncio.Event()

    async def start(self) -> str:
        # Like the real gateway: messages up to 16 MB (a 6 MB response plus its envelope).
        self.server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", 16 * 1024 * 1024),
                ("grpc.max_send_message_length", 16 * 1024 * 1024),
            ]
        )
        pb_grpc.add_EnvironmentGatewayServicer_to_server(self, self.server)
        port = self.server.add_insecure_port(f"127.0.0.1:{self._port}")
        self._port = port
        await self.server.start()
        self.address = f"127.0.0.1:{port}"
        if self._lane:
            self.lane_server = await asyncio.start_server(
                self._serve_lane, "127.0.0.1", self.lane_port
            )
            self.lane_port = self.lane_server.sockets[0].getsockname()[1]
            self.lane_address = f"127.0.0.1:{self.lane_port}"
        return self.address

    async def stop(self, grace: float | None = None) -> None:
        if self.server is not None:
            await self.server.stop(grace)
            self.server = None
        if self.lane_server is not None:
            self.lane_server.close()
            for task in list(self._lane_tasks):
                task.cancel()
            self.lane_server = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop(None)

    # ---------------------------------------------------------------- servicer
    async def Connect(self, request_iterator: Any, context: Any) -> None:
        try:
            await self._serve_stream(context)
        except asyncio.CancelledError:  # server stopping: not an error worth a traceback
            return

    async def _serve_lane(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._lane_tasks.add(task)
        try:
            if await reader.readexactly(len(PREFACE)) == PREFACE:
                await self._serve_stream(_LaneContext(reader, writer))
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._lane_tasks.discard(task)
            writer.close()

    async def _serve_stream(self, context: Any) -> None:
        first = await context.read()
        if first is grpc.aio.EOF or first.WhichOneof("kind") != "register":
            return
        env_id = first.register.environment_id
        conn = Connection(env_id, first.register)
        if isinstance(context, _LaneContext):
            conn.via = "lane"
        self.connections[env_id] = conn
        self.registrations += 1
        self._notify()
        await context.write(pb.GatewayMessage(registered=pb.Registered(environment_id=env_id)))

        async def reader() -> None:
            while True:
                message = await context.read()
                if message is grpc.aio.EOF:
                    return
                kind = message.WhichOneof("kind")
                if kind == "ready":
                    conn.ready_message = message.ready
                    conn.ready.set()
                elif kind == "result":
                    fut = conn.results.get(message.result.request_id)
                    if fut is not None and not fut.done():
                        fut.set_result(message.result)
                elif kind == "draining":
                    conn.draining = True
                self._notify()

        read_task = asyncio.create_task(reader())
        get_task: asyncio.Task[Any] | None = None
        try:
            while not read_task.done():
                get_task = asyncio.create_task(conn.outbox.get())
                done, _ = await asyncio.wait(
                    {get_task, read_task}, return_when=asyncio.FIRST_COMPLETED
                )
                if get_task in done:
                    await context.write(get_task.result())
                    get_task = None
        finally:
            if get_task is not None:
                get_task.cancel()
            read_task.cancel()
            conn.closed.set()
            self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # ---------------------------------------------------------------- driving
    async def wait_for(self, predicate: Any, timeout: float = 10.0) -> None:
        async def loop() -> None:
            while not predicate():
                await self._changed.wait()

        await asyncio.wait_for(loop(), timeout)

    async def wait_registered(self, environment_id: str, timeout: float = 10.0) -> Connection:
        await self.wait_for(lambda: environment_id in self.connections, timeout)
        return self.connections[environment_id]

    async def wait_ready(self, environment_id: str, timeout: float = 10.0) -> Any:
        conn = await self.wait_registered(environment_id, timeout)
        await asyncio.wait_for(conn.ready.wait(), timeout)
        return conn.ready_message

    async def invoke(
        self,
        environment_id: str,
        payload: bytes | str = b"{}",
        *,
        request_id: str | None = None,
        invoked_function_arn: str = "",
        client_context: str = "",
        cognito_identity: str = "",
        trace_id: str = "",
        timeout: float = 30.0,
    ) -> Any:
        """Send one invocation and wait for its Result message."""
        conn = self.connections[environment_id]
        rid = request_id or str(uuid.uuid4())
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        conn.results[rid] = fut
        body = payload.encode() if isinstance(payload, str) else payload
        await conn.outbox.put(
            pb.GatewayMessage(
                invocation=pb.Invocation(
                    request_id=rid,
                    payload=body,
                    invoked_function_arn=invoked_function_arn,
                    client_context=client_context,
                    cognito_identity=cognito_identity,
                    trace_id=trace_id,
                )
            )
        )
        return await asyncio.wait_for(fut, timeout)

    async def shutdown(self, environment_id: str, reason: str = "test") -> None:
        conn = self.connections[environment_id]
        await conn.outbox.put(pb.GatewayMessage(shutdown=pb.Shutdown(reason=reason)))
