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


def require(*modules: str) -> None:
    """Skip the calling module unless the packages it judges klambda with are installed
    (they are in the `test` extra: pip install -e '.[test]')."""
    for name in modules:
        pytest.importorskip(name, reason=f"{name} is not installed: pip install -e '.[test]'")


class Layers:
    """Layer zips + manifests built from this interpreter's packages, once per session."""

    def __init__(self, out: Path) -> None:
        self._builder = load_layer_builder()
        self._out = out
        self._built: dict[str, Path] = {}

    def __getitem__(self, name: str) -> Path:
        if name not in self._built:
            packages = self._builder.LAYERS[name]
            self._built[name] = self._builder.build_layer(name, packages, self._out)
        return self._built[name]


@pytest.fixture(scope="session")
def layer_manifests(tmp_path_factory: pytest.TempPathFactory) -> Layers:
    """``layer_manifests[name]``: the manifest of layer ``name`` (build_layer.LAYERS)."""
    return Layers(tmp_path_factory.mktemp("layers"))


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
