"""Pure builders of the platform log lines (lambda-wire.md §6) and billing figures."""

from __future__ import annotations

import math

LOG_TAIL_BYTES = 4096


def start_line(request_id: str, *, version: str) -> str:
    return f"START RequestId: {request_id} Version: {version}\n"


def init_start_line(runtime: str) -> str:
    """Written when a runtime process starts its init (Lambda: ``INIT_START Runtime Version``)."""
    return f"INIT_START Runtime Version: klambda:{runtime}\n"


def init_report_line(
    *, duration_ms: float, status: str, error_type: str, phase: str = "init"
) -> str:
    """Written when an init fails: ``INIT_REPORT Init Duration: … Phase: … Status: …``."""
    return (
        f"INIT_REPORT Init Duration: {duration_ms:.2f} ms\tPhase: {phase}\tStatus: {status}\t"
        f"Error Type: {error_type}\n"
    )


def end_line(request_id: str) -> str:
    return f"END RequestId: {request_id}\n"


def billed_duration_ms(duration_ms: float) -> int:
    """Lambda bills every invocation in 1 ms steps, rounded up, at least 1 ms."""
    return max(1, math.ceil(duration_ms))


def report_line(
    request_id: str,
    *,
    duration_ms: float,
    memory_size_mb: int,
    max_memory_used_mb: int,
    init_duration_ms: float = 0.0,
) -> str:
    """The REPORT line; like real AWS, Init Duration is the last field (cold starts only)."""
    line = (
        f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
        f"Billed Duration: {billed_duration_ms(duration_ms)} ms\t"
        f"Memory Size: {memory_size_mb} MB\tMax Memory Used: {max_memory_used_mb} MB\t"
    )
    if init_duration_ms > 0:
        line += f"Init Duration: {init_duration_ms:.2f} ms\t"
    return line + "\n"


def tail(data: bytes, limit: int = LOG_TAIL_BYTES) -> bytes:
    """The last ``limit`` bytes of an invocation log (what ``LogType: Tail`` returns)."""
    return data[-limit:] if len(data) > limit else data


def memory_mb(rss_bytes: int) -> int:
    """Bytes to the whole megabytes Lambda reports (rounded up, at least 1)."""
    return max(1, math.ceil(rss_bytes / (1024 * 1024)))
