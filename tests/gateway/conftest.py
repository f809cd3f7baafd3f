"""Fixtures of the gateway tests: a whole platform per test - the real LocalRegistry, the
real ZygoteLauncher starting real agents + runtimes, the gRPC server, the HTTP app."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from klambda_runtime.launcher import ZygoteLauncher

from .harness import Harness
from .local_ops import LocalOps


@pytest.fixture
def make_platform(tmp_path: Path) -> Iterator[Callable[..., Harness]]:
    """``make_platform(**settings)`` starts a platform; every one is stopped at teardown."""
    started: list[Harness] = []

    def make(**settings: Any) -> Harness:
        h = Harness(tmp_path / f"state{len(started)}",
                    registry_factory=lambda: LocalOps(tmp_path / "registry"),
                    launcher_factory=ZygoteLauncher, **settings)
        started.append(h)
        return h.start()

    yield make
    for h in started:
        h.stop()


@pytest.fixture
def platform(make_platform: Callable[..., Harness]) -> Harness:
    return make_platform()
