"""Durable storage of async (Event) invocations behind a small Protocol.

``SQLiteEventStore`` keeps events in ``<state>/async-events.sqlite`` (WAL,
``synchronous=FULL``: a ``put`` has been fsynced when it returns, so the 202 is only
sent for an event that survives kill -9). Workers lease due events; a lease expires,
so an event whose worker died is run again (at-least-once). Failed events are moved to
the ``dead_letters`` table, never silently deleted.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class AsyncEvent:
    event_id: str  # also the invocation's request id
    namespace: str
    function: str
    qualifier: str  # "" = unqualified
    payload: bytes
    created_at: float  # epoch seconds
    attempts: int = 0  # completed attempts that failed
    next_attempt_at: float = 0.0


@dataclass(frozen=True)
class DeadLetter:
    event_id: str
    namespace: str
    function: str
    qualifier: str
    payload: bytes
    reason: str
    detail: str
    attempts: int
    failed_at: float


class AsyncEventStore(Protocol):
    async def put(self, event: AsyncEvent) -> None:
        """Persist durably (returns after the commit is on disk)."""

    async def lease(self, *, now: float, limit: int, lease_seconds: float,
                    owner: str) -> list[AsyncEvent]: ...

    async def complete(self, event_id: str) -> None: ...

    async def reschedule(self, event_id: str, *, attempts: int, next_attempt_at: float,
                         error: str) -> None: ...

    async def dead_letter(self, event: AsyncEvent, *, reason: str, detail: str,
                          attempts: int, now: float) -> None: ...

    async def release_owner(self, owner: str) -> int:
        """Expire every lease held by ``owner`` (its previous life was killed)."""

    async def next_due(self) -> float | None: ...

    async def pending(self) -> int: ...

    async def dead_letters(self) -> list[DeadLetter]: ...

    async def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    event_id TEXT PRIMARY KEY, namespace TEXT NOT NULL, function TEXT NOT NULL,
    qualifier TEXT NOT NULL, payload BLOB NOT NULL, created_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL NOT NULL DEFAULT 0,
    lease_owner TEXT NOT NULL DEFAULT '', lease_until REAL NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS events_due ON events (next_attempt_at);
CREATE TABLE IF NOT EXISTS dead_letters (
    event_id TEXT PRIMARY KEY, namespace TEXT NOT NULL, function TEXT NOT NULL,
    qualifier TEXT NOT NULL, payload BLOB NOT NULL, reason TEXT NOT NULL,
    detail TEXT NOT NULL, attempts INTEGER NOT NULL, created_at REAL NOT NULL,
    failed_at REAL NOT NULL);
"""

_COLUMNS = (
    "event_id, namespace, function, qualifier, payload, created_at, attempts, next_attempt_at"
)


def _event(row: tuple[Any, ...]) -> AsyncEvent:
    return AsyncEvent(str(row[0]), str(row[1]), str(row[2]), str(row[3]), bytes(row[4]),
                      float(row[5]), int(row[6]), float(row[7]))


class SQLiteEventStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="async-store")
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    async def _run(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    def _tx(self, statements: list[tuple[str, tuple[object, ...]]]) -> int:
        cur = self._db.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            count = 0
            for sql, args in statements:
                count += cur.execute(sql, args).rowcount
            cur.execute("COMMIT")
            return count
        except BaseException:
            cur.execute("ROLLBACK")
            raise

    async def put(self, event: AsyncEvent) -> None:
        await self._run(lambda: self._tx([(
            f"INSERT OR IGNORE INTO events ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)",
            (event.event_id, event.namespace, event.function, event.qualifier, event.payload,
             event.created_at, event.attempts, event.next_attempt_at))]))

    async def lease(self, *, now: float, limit: int, lease_seconds: float,
                    owner: str) -> list[AsyncEvent]:
        def work() -> list[AsyncEvent]:
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                rows = cur.execute(
                    f"SELECT {_COLUMNS} FROM events WHERE next_attempt_at <= ? AND "
                    "lease_until <= ? ORDER BY next_attempt_at, created_at LIMIT ?",
                    (now, now, limit)).fetchall()
                cur.executemany(
                    "UPDATE events SET lease_owner = ?, lease_until = ? WHERE event_id = ?",
                    [(owner, now + lease_seconds, r[0]) for r in rows])
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            return [_event(r) for r in rows]

        return await self._run(work)

    async def complete(self, event_id: str) -> None:
        await self._run(lambda: self._tx([("DELETE FROM events WHERE event_id = ?",
                                           (event_id,))]))

    async def reschedule(self, event_id: str, *, attempts: int, next_attempt_at: float,
                         error: str) -> None:
        await self._run(lambda: self._tx([(
            ("UPDATE events SET attempts = ?, next_attempt_at = ?, lease_owner = '', "
             "lease_until = 0, last_error = ? WHERE event_id = ?"),
            (attempts, next_attempt_at, error[:2000], event_id))]))

    async def dead_letter(self, event: AsyncEvent, *, reason: str, detail: str,
                          attempts: int, now: float) -> None:
        await self._run(lambda: self._tx([
            ("INSERT OR REPLACE INTO dead_letters VALUES (?,?,?,?,?,?,?,?,?,?)",
             (event.event_id, event.namespace, event.function, event.qualifier, event.payload,
              reason, detail[:8000], attempts, event.created_at, now)),
            ("DELETE FROM events WHERE event_id = ?", (event.event_id,)),
        ]))

    async def release_owner(self, owner: str) -> int:
        return await self._run(lambda: self._tx([(
            "UPDATE events SET lease_owner = '', lease_until = 0 WHERE lease_owner = ?",
            (owner,))]))

    async def next_due(self) -> float | None:
        def work() -> float | None:
            row = self._db.execute(
                "SELECT MIN(MAX(next_attempt_at, lease_until)) FROM events").fetchone()
            return None if row is None or row[0] is None else float(row[0])
        return await self._run(work)

    async def pending(self) -> int:
        return await self._run(
            lambda: int(self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0]))

    async def dead_letters(self) -> list[DeadLetter]:
        def work() -> list[DeadLetter]:
            rows = self._db.execute(
                "SELECT event_id, namespace, function, qualifier, payload, reason, detail, "
                "attempts, failed_at FROM dead_letters ORDER BY failed_at").fetchall()
            return [DeadLetter(r[0], r[1], r[2], r[3], bytes(r[4]), r[5], r[6], int(r[7]),
                               float(r[8])) for r in rows]
        return await self._run(work)

    async def close(self) -> None:
        await self._run(self._db.close)
        self._executor.shutdown(wait=True)
