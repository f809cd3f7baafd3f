"""The Dispatcher in-process (its environment side driven directly, as the gRPC server
does): FIFO per key, synchronous before asynchronous work, provisioned environments used
first, bounded queue wait, one invocation per environment, a crash during start failing
the waiting invocation, stop() never touching a busy environment, autoscaler kick."""

from __future__ import annotations

import asyncio

import pytest
from klambda_gateway.autoscaler import EnvState
from klambda_gateway.dispatch import ASYNC, SYNC, Dispatcher, Environment
from klambda_gateway.errors import TooManyRequests
from klambda_gateway.registry import FunctionVersion
from klambda_proto import environment_pb2 as pb

FV = FunctionVersion(namespace="default", function_name="f", version="$LATEST", revision="r1",
                     runtime="python3.12", handler="app.handler", memory_size=128, timeout=3)


class RecordingTransport:
    """An in-memory Transport: records what the Dispatcher writes."""

    kind = "memory"
    writes_wait = False

    def __init__(self) -> None:
        self.written: list[pb.GatewayMessage] = []
        self.closed = False

    async def write(self, message: pb.GatewayMessage) -> None:
        self.written.append(message)

    def write_nowait(self, message: pb.GatewayMessage) -> None:
        self.written.append(message)

    def close(self) -> None:
        self.closed = True


def connect(d: Dispatcher, env_id: str, *, provisioned: bool = False
            ) -> tuple[Environment, RecordingTransport]:
    d.add_starting(FV, env_id, provisioned=provisioned)
    transport = RecordingTransport()
    env = d.connected(pb.Register(namespace="default", function_name="f", version="$LATEST",
                                  environment_id=env_id), transport)
    assert env is not None
    return env, transport


async def settle(d: Dispatcher, *envs: Environment) -> None:
    """Let the awaiting side flush (as the gRPC reader does after each message)."""
    for env in envs:
        await d.flush(env)
    await asyncio.sleep(0)


def invoke(d: Dispatcher, rid: str, kind: str = SYNC, timeout: float = 5) -> asyncio.Task:  # type: ignore[type-arg]
    return asyncio.ensure_future(d.invoke(FV, pb.Invocation(request_id=rid), kind=kind,
                                          queue_timeout=timeout))


def sent(transport: RecordingTransport) -> list[str]:
    out = [m.invocation.request_id for m in transport.written
           if m.WhichOneof("kind") == "invocation"]
    transport.written.clear()
    return out


async def test_sync_before_async_and_fifo() -> None:
    d = Dispatcher()
    kicks: list[object] = []
    d.on_demand = kicks.append
    env, outbox = connect(d, "e1")
    tasks = [invoke(d, "a1", ASYNC), invoke(d, "s1"), invoke(d, "a2", ASYNC), invoke(d, "s2")]
    await asyncio.sleep(0)
    assert len(kicks) == 4 and d.pools[FV.key].queued == 4
    d.ready(env, pb.Ready(init_duration_ms=5))
    order = []
    for _ in range(4):
        await settle(d, env)
        (rid,) = sent(outbox)
        order.append(rid)
        d.result(env, pb.Result(request_id=rid, payload=b"1"))
    assert order == ["s1", "s2", "a1", "a2"]
    outcomes = await asyncio.gather(*tasks)
    assert [o.result.request_id for o in outcomes] == ["a1", "s1", "a2", "s2"]
    assert outcomes[1].cold is not None  # the first invocation of the environment
    assert outcomes[0].cold is None and env.state is EnvState.IDLE


async def test_one_invocation_per_environment_and_provisioned_first() -> None:
    d = Dispatcher()
    od, od_out = connect(d, "od")
    pc, pc_out = connect(d, "pc", provisioned=True)
    d.ready(od, pb.Ready())
    d.ready(pc, pb.Ready())
    t1 = invoke(d, "r1")
    await asyncio.sleep(0)
    assert sent(pc_out) == ["r1"] and sent(od_out) == []
    t2, t3 = invoke(d, "r2"), invoke(d, "r3")
    await asyncio.sleep(0)
    assert sent(od_out) == ["r2"] and d.pools[FV.key].queued == 1
    d.result(pc, pb.Result(request_id="r1"))
    await settle(d, pc)
    assert sent(pc_out) == ["r3"]
    d.result(od, pb.Result(request_id="r2"))
    d.result(pc, pb.Result(request_id="r3"))
    await asyncio.gather(t1, t2, t3)


async def test_queue_timeout() -> None:
    d = Dispatcher()
    with pytest.raises(TooManyRequests) as info:
        await invoke(d, "r1", timeout=0.05)
    assert info.value.reason == "FunctionInvocationRateLimitExceeded"
    assert d.pools[FV.key].queued == 0


async def test_crash_during_start_fails_waiting_invocation() -> None:
    d = Dispatcher()
    d.add_starting(FV, "e1", provisioned=False)
    task = invoke(d, "r1")
    await asyncio.sleep(0)
    d.gone("e1", reason="exit status 1")
    outcome = await asyncio.wait_for(task, 1)
    assert outcome.result.function_error == "Unhandled"
    assert outcome.result.error_type == "Runtime.ExitError"
    assert b"exit status 1" in outcome.result.payload


async def test_lost_environment_fails_in_flight() -> None:
    d = Dispatcher()
    env, _outbox = connect(d, "e1")
    d.ready(env, pb.Ready())
    task = invoke(d, "r1")
    await asyncio.sleep(0)
    d.disconnected(env)
    outcome = await asyncio.wait_for(task, 1)
    assert outcome.result.error_type == "Runtime.ExitError"
    assert "e1" not in d.pools[FV.key].environments


async def test_stop_skips_busy_and_draining_sends_shutdown() -> None:
    d = Dispatcher()
    busy, _ = connect(d, "busy")
    idle, idle_out = connect(d, "idle")
    d.ready(busy, pb.Ready())
    task = invoke(d, "r1")
    await asyncio.sleep(0)
    d.ready(idle, pb.Ready())
    assert d.stop(["busy", "idle"]) == ["idle"]
    await asyncio.sleep(0.01)
    assert [m.WhichOneof("kind") for m in idle_out.written] == ["shutdown"]
    assert idle_out.closed
    d.result(busy, pb.Result(request_id="r1"))
    await task
    assert busy.state is EnvState.IDLE


async def test_result_for_unknown_request_is_ignored() -> None:
    d = Dispatcher()
    env, _ = connect(d, "e1")
    d.ready(env, pb.Ready())
    d.result(env, pb.Result(request_id="nobody"))
    assert env.state is EnvState.IDLE


def test_cold_start_phases_are_disjoint() -> None:
    from klambda_gateway.dispatch import cold_start_phases

    # queued at 1.0, env launched 1.001, registered 1.011, ready 1.031, dispatched 1.032
    c = cold_start_phases(enqueued=1.0, dispatched=1.032, launched=1.001, registered=1.011,
                          ready=1.031, first=True, invoke_init_ms=0)
    assert (round(c.queue_ms, 3), round(c.start_ms, 3), round(c.init_ms, 3)) == (2, 10, 20)
    # arrived while the environment was already initialising
    c = cold_start_phases(enqueued=1.02, dispatched=1.032, launched=1.001, registered=1.011,
                          ready=1.031, first=True, invoke_init_ms=0)
    assert (round(c.queue_ms, 3), c.start_ms, round(c.init_ms, 3)) == (1, 0, 11)
    # after a reset: init ran inside the invocation, no start phase
    c = cold_start_phases(enqueued=5.0, dispatched=5.0, launched=1.0, registered=1.01,
                          ready=1.03, first=False, invoke_init_ms=80.0)
    assert (c.queue_ms, c.start_ms, c.init_ms) == (0, 0, 80.0)


async def test_first_invocation_phases_add_up_to_the_wait() -> None:
    """The first Result of an on-demand environment carries its Init Duration (for the
    REPORT line); that init happened before Ready and is counted once."""
    now = [10.0]
    d = Dispatcher(clock=lambda: now[0])
    d.add_starting(FV, "e1", provisioned=False)  # launched at 10.0
    task = invoke(d, "r1")
    await asyncio.sleep(0)
    now[0] = 10.010
    transport = RecordingTransport()
    env = d.connected(pb.Register(namespace="default", function_name="f", version="$LATEST",
                                  environment_id="e1"), transport)
    assert env is not None
    now[0] = 10.030
    d.ready(env, pb.Ready(init_duration_ms=20.0))  # dispatched now: waited 30 ms
    d.flush_now(env)  # as the lane session does after each message
    assert sent(transport) == ["r1"]
    now[0] = 10.031
    d.result(env, pb.Result(request_id="r1", init_duration_ms=20.0))
    cold = (await task).cold
    assert cold is not None
    assert (round(cold.queue_ms, 3), round(cold.start_ms, 3), round(cold.init_ms, 3)) == (
        0, 10, 20)


async def test_an_environment_silent_past_its_timeout_is_stopped_by_the_sweep() -> None:
    """No timer per invocation: the autoscaler's tick sweeps busy environments, and one
    that has not answered within the function timeout + the grace period is stopped and
    its caller gets Runtime.Unknown."""
    from klambda_gateway.dispatch import OVERDUE_GRACE_SECONDS

    now = [100.0]
    d = Dispatcher(clock=lambda: now[0])
    stuck: list[str] = []
    d.on_stuck = stuck.append
    env, transport = connect(d, "e1")
    d.ready(env, pb.Ready())
    task = invoke(d, "r1")
    await asyncio.sleep(0)
    assert sent(transport) == ["r1"]
    now[0] += FV.timeout + OVERDUE_GRACE_SECONDS - 1
    d.sweep_overdue()
    assert not task.done() and env.current is not None
    now[0] += 2
    d.sweep_overdue()
    outcome = await task
    assert outcome.result.error_type == "Runtime.Unknown"
    assert transport.closed and stuck == ["e1"]
