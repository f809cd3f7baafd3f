"""The stream of an embedded environment (klambda_runtime.embedded): the agent's code and
the Dispatcher in one process, joined without a socket.

The same conversation as gRPC and the lane (environment.proto's messages, the same
``EnvironmentSession``), handed over as objects: the agent's end looks like a lane stream
to the agent (its writes never wait, so its warm path runs), the gateway's end is the
environment's ``Transport``. Gateway → agent messages are delivered synchronously, except
while the agent is itself delivering one (a Result whose answer starts the next
invocation): those wait for the next loop iteration, so the agent is never re-entered.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any

from klambda_proto import environment_pb2 as pb
from klambda_runtime.spec import EnvironmentSpec

from klambda_gateway.dispatch import Dispatcher
from klambda_gateway.env_session import EnvironmentSession

log = logging.getLogger(__name__)


class _Link:
    def __init__(self, dispatcher: Dispatcher) -> None:
        self._loop = asyncio.get_running_loop()
        self.dispatcher = dispatcher
        self.session = EnvironmentSession(dispatcher, GatewayEnd(self))
        self.handler: Any = None
        self.inbox: collections.deque[pb.GatewayMessage] = collections.deque()
        self.waiter: asyncio.Future[None] | None = None
        self.closed = False
        self._in_agent_write = False

    # agent -> gateway
    def to_gateway(self, message: pb.AgentMessage) -> None:
        if self.closed:
            raise ConnectionError("the gateway closed this environment's stream")
        self._in_agent_write = True
        try:
            if not self.session.on_message(message):
                self.close()
            elif self.session.env is not None:
                self.dispatcher.flush_now(self.session.env)
        finally:
            self._in_agent_write = False

    # gateway -> agent
    def to_agent(self, message: pb.GatewayMessage) -> None:
        if self.closed:
            return
        if self.handler is not None and not self._in_agent_write and not self.inbox:
            self.handler(message)
            return
        self.inbox.append(message)
        if self.handler is not None and len(self.inbox) == 1:
            self._loop.call_soon(self._drain)
        self._wake()

    def _drain(self) -> None:
        while self.inbox and self.handler is not None and not self.closed:
            self.handler(self.inbox.popleft())

    def _wake(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._wake()
        self.session.ended()


class GatewayEnd:
    """The Dispatcher's Transport of an embedded environment."""

    kind = "embedded"
    writes_wait = False

    def __init__(self, link: _Link) -> None:
        self._link = link

    async def write(self, message: pb.GatewayMessage) -> None:
        self.write_nowait(message)

    def write_nowait(self, message: pb.GatewayMessage) -> None:
        self._link.to_agent(message)

    def close(self) -> None:
        self._link.close()


class AgentEnd:
    """What the embedded agent holds: klambda_runtime.streams' Stream interface."""

    kind = "lane"  # writes never wait: the agent's warm path runs without tasks

    def __init__(self, link: _Link) -> None:
        self._link = link

    async def write(self, message: pb.AgentMessage) -> None:
        self.write_nowait(message)

    def write_nowait(self, message: pb.AgentMessage) -> None:
        self._link.to_gateway(message)

    async def read(self) -> pb.GatewayMessage | None:
        link = self._link
        while not link.inbox:
            if link.closed:
                return None
            link.waiter = asyncio.get_running_loop().create_future()
            await link.waiter
        return link.inbox.popleft()

    async def listen(self, handler: Any) -> None:
        link = self._link
        while link.inbox:
            handler(link.inbox.popleft())
        link.handler = handler
        try:
            while not link.closed:
                link.waiter = asyncio.get_running_loop().create_future()
                await link.waiter
                link._drain()
        finally:
            link.handler = None

    async def done_writing(self) -> None:
        self._link.close()

    async def close(self) -> None:
        self._link.close()


def connector(dispatcher: Dispatcher) -> Any:
    """The ``connect`` of klambda_runtime.embedded.EmbeddedLauncher for this gateway."""

    async def connect(spec: EnvironmentSpec) -> AgentEnd:
        return AgentEnd(_Link(dispatcher))

    return connect
