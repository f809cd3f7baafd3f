"""The autoscaler loop in-process, with an in-memory registry and scaler (no processes):
event-driven start on the first queued invocation, provisioned environments from aliases,
retirement of an old $LATEST revision's idle environments, the burst bucket deferring
starts and re-kicking when tokens are due."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from klambda_gateway.dispatch import SYNC, Dispatcher
from klambda_gateway.registry import FunctionVersion
from klambda_gateway.scaling import Autoscaler
from klambda_gateway.settings import GatewaySettings
from klambda_proto import environment_pb2 as pb

from .fakes import FakeRegistry
from .test_dispatch import RecordingTransport


class RecordingScaler:
    def __init__(self) -> None:
        self.started: list[tuple[str, str, bool]] = []  # (version, env id, provisioned)
        self.stopped: list[str] = []

    async def start(self, version: FunctionVersion, environment_ids: Sequence[str], *,
                    provisioned: bool) -> None:
        self.started += [(version.version, i, provisioned) for i in environment_ids]

    async def stop(self, environment_ids: Sequence[str]) -> None:
        self.stopped += list(environment_ids)

    async def close(self) -> None:
        return None


def make(tmp_path: Path, **settings: object) -> tuple[FakeRegistry, Dispatcher,
                                                      RecordingScaler, Autoscaler]:
    registry = FakeRegistry(tmp_path)
    dispatcher = Dispatcher()
    scaler = RecordingScaler()
    auto = Autoscaler(dispatcher=dispatcher, scaler=scaler, registry=registry,
                      settings=GatewaySettings(**settings))  # type: ignore[arg-type]
    return registry, dispatcher, scaler, auto


def ready(d: Dispatcher, env_id: str) -> None:
    env = d.environment(env_id)
    assert env is not None
    d.connected(pb.Register(environment_id=env_id), RecordingTransport())
    d.ready(env, pb.Ready())


async def test_first_invocation_starts_an_environment(tmp_path: Path) -> None:
    registry, d, scaler, _ = make(tmp_path)
    fn = registry.add_function("f", "def handler(e, c): pass\n")
    task = asyncio.ensure_future(d.invoke(fn.latest, pb.Invocation(request_id="r"), kind=SYNC,
                                          queue_timeout=5))
    await asyncio.sleep(0.01)
    assert [(v, p) for v, _, p in scaler.started] == [("$LATEST", False)]
    env_id = scaler.started[0][1]
    ready(d, env_id)
    await asyncio.sleep(0)
    env = d.environment(env_id)
    assert env is not None and env.current is not None
    d.result(env, pb.Result(request_id="r"))
    assert (await task).environment_id == env_id


async def test_provisioned_and_retirement(tmp_path: Path) -> None:
    registry, d, scaler, auto = make(tmp_path, keep_warm_seconds=3600)
    registry.add_function("f", "A = 1\n")
    registry.publish("f")
    registry.set_alias("f", "live", "1", provisioned=2)
    auto.tick()
    await asyncio.sleep(0.01)
    assert sorted((v, p) for v, _, p in scaler.started) == [("1", True), ("1", True)]
    for _, env_id, _ in scaler.started:
        ready(d, env_id)
    auto.tick()
    await asyncio.sleep(0.01)
    assert len(scaler.started) == 2 and scaler.stopped == []  # the floor is kept

    # a $LATEST environment, then a new revision: the idle old one retires at once
    latest = registry.function("default", "f")
    assert latest is not None
    task = asyncio.ensure_future(d.invoke(latest.latest, pb.Invocation(request_id="r"),
                                          kind=SYNC, queue_timeout=5))
    await asyncio.sleep(0.01)
    old_id = scaler.started[-1][1]
    ready(d, old_id)
    await asyncio.sleep(0)
    old = d.environment(old_id)
    assert old is not None
    d.result(old, pb.Result(request_id="r"))
    await task
    registry.add_function("f", "A = 2\n")
    auto.tick()
    await asyncio.sleep(0.01)
    assert scaler.stopped == [old_id]
    # moving the alias away makes the provisioned environments excess
    registry.set_alias("f", "live", "1", provisioned=0)
    auto.tick()
    await asyncio.sleep(0.01)
    assert scaler.stopped == [old_id]  # ...but they are kept warm for keep_warm_seconds


async def test_burst_bucket_defers_and_rekicks(tmp_path: Path) -> None:
    registry, d, scaler, _ = make(tmp_path, burst_capacity=2, burst_rate_per_second=50.0,
                                  scale_tick_seconds=0.05)
    fn = registry.add_function("f", "A = 1\n")
    tasks = [asyncio.ensure_future(d.invoke(fn.latest, pb.Invocation(request_id=f"r{i}"),
                                            kind=SYNC, queue_timeout=5)) for i in range(5)]
    await asyncio.sleep(0.001)
    assert len(scaler.started) == 2  # the bucket held 2 tokens
    await asyncio.sleep(0.2)  # 50 tokens/s: the re-kick starts the other 3
    assert len(scaler.started) == 5
    for t in tasks:
        t.cancel()
