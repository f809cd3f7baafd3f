"""Fixtures for the control-plane tests; tests here that use `k8s_cluster` are `cluster`-marked."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from .harness import TestCluster
from .plugin import k8s_cluster  # noqa: F401 - re-exported fixture

_ns_counter = itertools.count(1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/cluster/" in str(item.fspath) and "k8s_cluster" in getattr(
            item, "fixturenames", ()
        ):
            item.add_marker(pytest.mark.cluster)


@pytest.fixture
def namespace(
    k8s_cluster: TestCluster,  # noqa: F811 - the fixture imported above
    request: pytest.FixtureRequest,
) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards (without waiting)."""
    name = f"t{next(_ns_counter)}-{request.node.name.lower().replace('_', '-')}"[:50].rstrip("-")
    k8s_cluster.create_namespace(name)
    k8s_cluster.wait_for(
        lambda: k8s_cluster.api.get_or_none(f"/api/v1/namespaces/{name}/serviceaccounts/default"),
        timeout=30,
        what=f"default ServiceAccount in {name}",
    )
    yield name
    k8s_cluster.api.delete(f"/api/v1/namespaces/{name}")
