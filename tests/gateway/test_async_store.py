"""SQLiteEventStore: durable put (visible after reopening), leasing (a leased event is not
handed out again until its lease expires or its owner's leases are released), reschedule,
dead letters, next_due."""

from __future__ import annotations

from pathlib import Path

from klambda_gateway.async_store import AsyncEvent, SQLiteEventStore


def ev(i: int, *, at: float = 0.0) -> AsyncEvent:
    return AsyncEvent(event_id=f"e{i}", namespace="default", function="f", qualifier="",
                      payload=b'{"i": %d}' % i, created_at=100.0 + i, next_attempt_at=at)


async def test_put_lease_complete_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite"
    store = SQLiteEventStore(path)
    for i in range(3):
        await store.put(ev(i))
    await store.put(ev(0))  # idempotent on the request id
    got = await store.lease(now=200, limit=2, lease_seconds=30, owner="a")
    assert [e.event_id for e in got] == ["e0", "e1"]
    assert [e.event_id for e in await store.lease(now=201, limit=5, lease_seconds=30,
                                                  owner="b")] == ["e2"]
    assert await store.lease(now=202, limit=5, lease_seconds=30, owner="b") == []
    await store.complete("e0")
    await store.close()

    # "kill -9": a new store on the same file sees e1 and e2, still leased ...
    store = SQLiteEventStore(path)
    assert await store.pending() == 2
    assert await store.lease(now=203, limit=5, lease_seconds=30, owner="a") == []
    # ... until the owner's leases are released (restart) or they expire
    assert await store.release_owner("a") == 1
    assert [e.event_id for e in await store.lease(now=204, limit=5, lease_seconds=30,
                                                  owner="a")] == ["e1"]
    assert [e.event_id for e in await store.lease(now=232, limit=5, lease_seconds=30,
                                                  owner="c")] == ["e2"]
    await store.close()


async def test_reschedule_dead_letter_next_due(tmp_path: Path) -> None:
    store = SQLiteEventStore(tmp_path / "events.sqlite")
    await store.put(ev(1))
    await store.put(ev(2, at=500))
    (first,) = await store.lease(now=200, limit=5, lease_seconds=30, owner="a")
    await store.reschedule(first.event_id, attempts=1, next_attempt_at=260, error="boom")
    assert await store.next_due() == 260
    assert await store.lease(now=259, limit=5, lease_seconds=30, owner="a") == []
    (again,) = await store.lease(now=260, limit=5, lease_seconds=30, owner="a")
    assert (again.event_id, again.attempts) == ("e1", 1)
    await store.dead_letter(again, reason="RetriesExhausted", detail="boom", attempts=3, now=300)
    dead = await store.dead_letters()
    assert [(d.event_id, d.reason, d.attempts, d.payload) for d in dead] == [
        ("e1", "RetriesExhausted", 3, b'{"i": 1}')]
    assert await store.pending() == 1 and await store.next_due() == 500
    await store.close()
