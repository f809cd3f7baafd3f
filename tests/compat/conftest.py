"""Fixtures of the compatibility suite: the layers built from installed packages (once per
session) and a helper that runs one real local platform per test module."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from .localplatform import EXAMPLES, LocalPlatform


def load_layer_builder() -> ModuleType:
    """examples/compat/build_layer.py (a script, not a package) as a module."""
    spec = importlib.util.spec_from_file_location("compat_build_layer",
                                                  EXAMPLES / "build_layer.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def layer_manifests(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Layer name -> manifest of a layer zip built from this interpreter's packages."""
    builder = load_layer_builder()
    out = tmp_path_factory.mktemp("layers")
    return {name: builder.build_layer(name, packages, out)
            for name, packages in builder.LAYERS.items()}


def run_platform(tmp_path_factory: pytest.TempPathFactory, name: str,
                 manifests: Sequence[Path | str], **settings: Any) -> Iterator[LocalPlatform]:
    """Body of a module-scoped fixture: start a platform, yield it, stop it."""
    root = tmp_path_factory.mktemp(name)
    platform = LocalPlatform(root / "state", manifests=manifests,
                             settings={k: str(v) for k, v in settings.items()})
    platform.start()
    try:
        yield platform
    finally:
        platform.stop()
