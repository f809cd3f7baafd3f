"""Environments that register without being started by this gateway (pods after a gateway
restart) join the pool of their own revision only: an environment running old `$LATEST`
code is refused rather than served new-revision traffic; an agent that sends no revision
joins the newest pool of its version."""

from __future__ import annotations

import dataclasses

from klambda_gateway.dispatch import Dispatcher
from klambda_gateway.registry import FunctionVersion
from klambda_proto import environment_pb2 as pb

OLD = FunctionVersion(namespace="default", function_name="f", version="$LATEST", revision="r1",
                      runtime="python3.12", handler="app.handler", memory_size=128, timeout=3)
NEW = dataclasses.replace(OLD, revision="r2")


class NullTransport:
    kind = "memory"
    writes_wait = False

    async def write(self, message: pb.GatewayMessage) -> None:
        pass

    def write_nowait(self, message: pb.GatewayMessage) -> None:
        pass

    def close(self) -> None:
        pass


def register(revision: str, env_id: str) -> pb.Register:
    return pb.Register(namespace="default", function_name="f", version="$LATEST",
                       environment_id=env_id, revision=revision)


def test_unknown_environment_joins_the_pool_of_its_revision() -> None:
    d = Dispatcher()
    d.pool_for(OLD)
    d.pool_for(NEW)
    env = d.connected(register("r1", "pod-a"), NullTransport())
    assert env is not None and env.key == OLD.key
    env = d.connected(register("r2", "pod-b"), NullTransport())
    assert env is not None and env.key == NEW.key


def test_environment_of_a_revision_no_longer_served_is_refused() -> None:
    d = Dispatcher()
    d.pool_for(NEW)
    assert d.connected(register("r1", "pod-old"), NullTransport()) is None


def test_agent_without_revision_joins_the_newest_pool() -> None:
    d = Dispatcher()
    d.pool_for(OLD)
    d.pool_for(NEW)
    env = d.connected(register("", "pod-c"), NullTransport())
    assert env is not None and env.key == NEW.key
