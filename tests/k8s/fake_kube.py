"""An in-memory stand-in for klambda_operator.kube.KubeApi (objects as dicts by key)."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping
from typing import Any

from klambda_operator.errors import KubeError

Obj = dict[str, Any]


class FakeKube:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], Obj] = {}
        self.calls: list[str] = []
        self._uid = itertools.count(1)

    @staticmethod
    def _key(kind: str, namespace: str, name: str) -> tuple[str, str, str]:
        return (kind, namespace, name)

    def put(self, obj: Mapping[str, Any]) -> Obj:
        o = copy.deepcopy(dict(obj))
        o["metadata"].setdefault("uid", f"uid-{next(self._uid)}")
        o["metadata"].setdefault("generation", 1)
        self.objects[
            self._key(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])
        ] = o
        return o

    def of_kind(self, kind: str) -> list[Obj]:
        return [o for (k, _, _), o in sorted(self.objects.items()) if k == kind]

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> Obj | None:
        self.calls.append(f"get {kind}/{name}")
        o = self.objects.get(self._key(kind, namespace, name))
        return copy.deepcopy(o) if o else None

    async def list(
        self, api_version: str, kind: str, namespace: str, labels: Mapping[str, str]
    ) -> list[Obj]:
        out = []
        for (k, ns, _), o in sorted(self.objects.items()):
            have = o["metadata"].get("labels", {})
            if k == kind and ns == namespace and all(have.get(a) == b for a, b in labels.items()):
                out.append(copy.deepcopy(o))
        return out

    async def create(self, obj: Mapping[str, Any]) -> Obj:
        meta = obj["metadata"]
        key = self._key(obj["kind"], meta["namespace"], meta["name"])
        self.calls.append(f"create {obj['kind']}/{meta['name']}")
        if key in self.objects:
            raise KubeError("already exists", status=409)
        return self.put(obj)

    async def apply(self, obj: Mapping[str, Any]) -> Obj:
        meta = obj["metadata"]
        key = self._key(obj["kind"], meta["namespace"], meta["name"])
        self.calls.append(f"apply {obj['kind']}/{meta['name']}")
        old = self.objects.get(key)
        new = copy.deepcopy(dict(obj))
        if old is not None:  # fields the applier does not send (replicas) are kept
            new["metadata"]["uid"] = old["metadata"]["uid"]
            if "replicas" in old.get("spec", {}) and "replicas" not in new.get("spec", {}):
                new["spec"]["replicas"] = old["spec"]["replicas"]
        return self.put(new)

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        self.calls.append(f"delete {kind}/{name}")
        self.objects.pop(self._key(kind, namespace, name), None)

    async def patch_status(
        self, api_version: str, kind: str, namespace: str, name: str, status: Mapping[str, Any]
    ) -> None:
        o = self.objects.get(self._key(kind, namespace, name))
        if o is None:
            raise KubeError("not found", status=404)
        o.setdefault("status", {}).update(copy.deepcopy(dict(status)))
