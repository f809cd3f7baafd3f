"""Only one module per component talks to the Kubernetes API (the brief's layering rule).

Covers: in klambda_operator only kube.py imports kubernetes_asyncio (Kopf itself is confined
to handlers.py and __main__.py); in klambda_gateway only k8s_registry.py and k8s_scaler.py do;
the pure builders (klambda_operator.resources) import no I/O library at all.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize(
    ("package", "library", "allowed"),
    [
        ("operator/klambda_operator", "kubernetes_asyncio", {"kube.py"}),
        ("operator/klambda_operator", "kopf", {"handlers.py", "__main__.py"}),
        ("gateway/klambda_gateway", "kubernetes_asyncio", {"k8s_registry.py", "k8s_scaler.py"}),
    ],
)
def test_only_the_seam_modules_import_the_client(
    package: str, library: str, allowed: set[str]
) -> None:
    offenders = sorted(
        str(p.relative_to(ROOT))
        for p in (ROOT / package).rglob("*.py")
        if library in _imports(p) and p.name not in allowed
    )
    assert offenders == []


def test_builders_are_pure() -> None:
    io_libs = {
        "kopf",
        "kubernetes_asyncio",
        "aiohttp",
        "urllib",
        "socket",
        "subprocess",
        "asyncio",
        "time",
        "datetime",
        "os",
        "requests",
    }
    # status.py takes `now` as an argument; datetime is only its type there.
    allowed = {"status.py": {"datetime"}}
    for path in (ROOT / "operator/klambda_operator/resources").glob("*.py"):
        used = _imports(path) & io_libs
        assert used <= allowed.get(path.name, set()), (path.name, used)
