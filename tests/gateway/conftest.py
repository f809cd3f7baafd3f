"""Fixtures of the gateway tests: a whole platform (gRPC + HTTP + scaler) per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .fakes import FakeRegistry
from .harness import Harness
from .launchers import FakeAgentLauncher


def _launcher_factory() -> Callable[[], Any]:
    return FakeAgentLauncher


@pytest.fixture
def make_platform(tmp_path: Path) -> Iterator[Callable[..., Harness]]:
    """``make_platform(**settings)`` starts a platform; every one is stopped at teardown."""
    started: list[Harness] = []

    def make(**settings: Any) -> Harness:
        h = Harness(tmp_path / f"state{len(started)}",
                    registry_factory=lambda: FakeRegistry(tmp_path / "registry"),
                    launcher_factory=_launcher_factory(), **settings)
        started.append(h)
        return h.start()

    yield make
    for h in started:
        h.stop()


@pytest.fixture
def platform(make_platform: Callable[..., Harness]) -> Harness:
    return make_platform()
