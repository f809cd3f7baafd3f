"""The local desired-state registry of ``klambda up``: SQLite under the state directory.

Reads (the :class:`~klambda_gateway.registry.Registry` Protocol) come from an immutable
in-memory snapshot that is swapped atomically after every committed write, so they cost a
dict lookup. Writes (apply / delete / publish) are serialised by a lock, computed against
the current state, checked as a whole (an apply is all-or-nothing), materialised
(:mod:`klambda_gateway.artifacts`) and committed in one SQLite transaction.

Storage (:mod:`klambda_gateway.local_store`): ``<state>/registry.db`` with the applied
documents, the $LATEST head of each function, published function versions and layer versions
(each a JSON record); artifacts under ``<state>/artifacts``.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from klambda_model import (
    KIND_ORDER,
    LATEST,
    Alias,
    EventSourceMapping,
    Function,
    Layer,
    Resource,
    content_hash,
    resource_key,
    to_document,
)
from klambda_model.resolve import ResolvedLayer, check_alias, function_revision, resolve_layers

from .artifacts import Artifact, ArtifactError, ArtifactStore
from .local_store import (
    Key,
    LayerRecord,
    State,
    VersionRecord,
    alias_rows,
    build_snapshot,
    create_schema,
    esm_rows,
    function_rows,
    lambda_time,
    layer_rows,
    load_state,
    referenced_artifacts,
    version_records,
    version_rows,
    write_changes,
)
from .registry import AliasConfig, FunctionConfig, FunctionVersion

log = logging.getLogger(__name__)

__all__ = [
    "ApplyError", "LayerRecord", "LocalRegistry", "NotFoundError", "RegistryError",
    "VersionRecord", "lambda_time", "normalize_kind",
]


class RegistryError(Exception):
    """Base of the local registry's errors. ``type`` names it in API error bodies."""

    type = "RegistryError"
    status = 400


class ApplyError(RegistryError):
    """The request cannot be applied; ``errors`` lists every problem (nothing was changed)."""

    type = "InvalidResourceException"

    def __init__(self, errors: list[str]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))


class NotFoundError(RegistryError):
    type = "ResourceNotFoundException"
    status = 404


def _label(resource: Resource) -> str:
    return f"{resource.kind.lower()}/{resource.metadata.name}"


def normalize_kind(kind: str) -> str:
    """'function', 'functions', 'Function', 'fn' ... -> 'Function'."""
    lowered = kind.lower()
    aliases = {
        "function": "Function", "functions": "Function", "fn": "Function",
        "layer": "Layer", "layers": "Layer",
        "alias": "Alias", "aliases": "Alias",
        "eventsourcemapping": "EventSourceMapping", "eventsourcemappings": "EventSourceMapping",
        "esm": "EventSourceMapping",
    }
    if lowered not in aliases:
        raise RegistryError(
            f'unknown kind "{kind}": use one of function, layer, alias, eventsourcemapping'
        )
    return aliases[lowered]


# --- the registry -------------------------------------------------------------------------


class LocalRegistry:
    """SQLite-backed desired state with an in-memory snapshot (see the module docstring)."""

    def __init__(self, state_dir: Path | str, *, clock: Callable[[], float] = time.time) -> None:
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.artifacts = ArtifactStore(self.state_dir / "artifacts")
        self._clock = clock
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            self.state_dir / "registry.db", check_same_thread=False, isolation_level=None
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        create_schema(self._db)
        self._snap = build_snapshot(load_state(self._db))
        self._collect_garbage(temporary=True)  # nothing runs yet: leftovers of a crash too
        self._generation = 1
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._waiters_lock = threading.Lock()

    # --- read side (registry.Registry) ---------------------------------------------------

    @property
    def generation(self) -> int:
        return self._generation

    def function(self, namespace: str, name: str) -> FunctionConfig | None:
        return self._snap.functions.get((namespace, name))

    def version(self, namespace: str, name: str, version: str) -> FunctionVersion | None:
        return self._snap.versions.get((namespace, name, version))

    def alias(self, namespace: str, function_name: str, name: str) -> AliasConfig | None:
        return self._snap.aliases.get((namespace, function_name, name))

    def aliases(self) -> list[AliasConfig]:
        return list(self._snap.alias_list)

    def functions(self) -> list[FunctionConfig]:
        return list(self._snap.function_list)

    async def wait_changed(self, generation: int) -> int:
        if self._generation != generation:
            return self._generation
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        entry = (loop, fut)
        with self._waiters_lock:
            self._waiters.append(entry)
        try:
            if self._generation == generation:
                await fut
        finally:
            with self._waiters_lock:
                if entry in self._waiters:
                    self._waiters.remove(entry)
        return self._generation

    def _notify(self) -> None:
        with self._waiters_lock:
            waiters, self._waiters = self._waiters, []
        for loop, fut in waiters:
            try:
                loop.call_soon_threadsafe(_resolve, fut)
            except RuntimeError:  # loop closed
                pass

    # --- listing helpers (CLI / admin API) -----------------------------------------------

    def resources(self, kind: str | None = None, namespace: str | None = None) -> list[Resource]:
        return [
            doc for (k, ns, _), doc in sorted(self._snap.state.docs.items())
            if (kind is None or k == kind) and (namespace is None or ns == namespace)
        ]

    def version_record(self, namespace: str, name: str, version: str) -> VersionRecord | None:
        state = self._snap.state
        if version == LATEST:
            return state.heads.get((namespace, name))
        for rec in state.versions.get((namespace, name), []):
            if rec.version == version:
                return rec
        return None

    def version_records(self, namespace: str, name: str) -> list[VersionRecord]:
        return version_records(self._snap.state, namespace, name)

    def layer_records(self, namespace: str, name: str | None = None) -> list[LayerRecord]:
        """Layer versions of a namespace (one layer if ``name``), by name then version."""
        return [rec for (ns, lname), recs in sorted(self._snap.state.layers.items())
                if ns == namespace and (name is None or lname == name) for rec in recs]

    def list_functions(self, namespace: str | None = None) -> list[dict[str, Any]]:
        return function_rows(self._snap, namespace)

    def list_versions(
        self, namespace: str | None = None, name: str | None = None
    ) -> list[dict[str, Any]]:
        return version_rows(self._snap, namespace, name)

    def list_aliases(
        self, namespace: str | None = None, function: str | None = None
    ) -> list[dict[str, Any]]:
        return alias_rows(self._snap, namespace, function)

    def list_layers(self, namespace: str | None = None) -> list[dict[str, Any]]:
        return layer_rows(self._snap, namespace)

    def list_event_source_mappings(
        self, namespace: str | None = None, function: str | None = None
    ) -> list[dict[str, Any]]:
        return esm_rows(self._snap, namespace, function)

    # --- write side ------------------------------------------------------------------------

    def apply(self, resources: Iterable[Resource]) -> list[str]:
        """Applies validated resources as one all-or-nothing change; returns one line per
        resource ("function/hello created", "... configured (published version 2)",
        "... unchanged"). Raises ApplyError listing every problem (nothing changed then)."""
        with self._lock:
            old = self._snap.state
            new = old.copy()
            planner = _Planner(self, old, new)
            messages = planner.apply(list(resources))
            if planner.changed():
                self._commit(old, new)
            return messages

    def delete(self, targets: Iterable[Resource | tuple[str, str, str]]) -> list[str]:
        """Deletes resources (or (kind, namespace, name) keys; kind may be 'function',
        'functions', ...). Deleting a Function deletes its versions and aliases."""
        keys: list[Key] = []
        for t in targets:
            if isinstance(t, tuple):
                keys.append((normalize_kind(t[0]), t[1], t[2]))
            else:
                keys.append(resource_key(t))
        with self._lock:
            old = self._snap.state
            new = old.copy()
            planner = _Planner(self, old, new)
            messages = planner.delete(keys)
            if planner.deleted:
                self._commit(old, new)
                self._collect_garbage()
            return messages

    def publish_version(self, namespace: str, name: str, description: str = "") -> FunctionVersion:
        """Snapshots $LATEST as the next version number; returns the latest published
        version unchanged when code and configuration did not change since (like Lambda)."""
        return self.publish_version_record(namespace, name, description).runnable()

    def publish_version_record(
        self, namespace: str, name: str, description: str = ""
    ) -> VersionRecord:
        with self._lock:
            old = self._snap.state
            head = old.heads.get((namespace, name))
            if head is None:
                raise NotFoundError(
                    f'function "{name}" does not exist in namespace "{namespace}"; apply it '
                    "first (klambda apply -f ...)"
                )
            published = old.versions.get((namespace, name), [])
            if published and published[-1].revision == head.revision:
                return published[-1]
            new = old.copy()
            rec = replace(
                head,
                version=str(int(published[-1].version) + 1 if published else 1),
                description=description or head.description,
                last_modified=lambda_time(self._clock()),
            )
            new.versions[(namespace, name)] = [*published, rec]
            self._commit(old, new)
            return rec

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _commit(self, old: State, new: State) -> None:
        write_changes(self._db, old, new)
        self._snap = build_snapshot(new)
        self._generation += 1
        self._notify()

    def _collect_garbage(self, *, temporary: bool = False) -> None:
        """Removes artifacts no function version ($LATEST or published) or layer version
        references (at open, and after a delete). Called with the write lock held (or before
        any write), so no apply is materialising meanwhile."""
        digests, opt_keys = referenced_artifacts(self._snap.state)
        try:
            removed = self.artifacts.collect_garbage(
                digests=digests, opt_keys=opt_keys, temporary=temporary)
        except OSError as exc:  # never fail a delete for this; the next run retries
            log.warning("artifact garbage collection failed: %s", exc)
            return
        if removed:
            log.info("removed %d unreferenced artifacts under %s", len(removed),
                     self.artifacts.root)

    def _now(self) -> str:
        return lambda_time(self._clock())


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class _Planner:
    """Computes one change of the desired state on a working copy; raises ApplyError."""

    def __init__(self, registry: LocalRegistry, old: State, new: State) -> None:
        self.artifacts = registry.artifacts
        self.now = registry._now()
        self.old, self.new = old, new
        self.errors: list[str] = []
        self.status: dict[Key, str] = {}
        self.notes: dict[Key, list[str]] = {}
        self.deleted = False

    def changed(self) -> bool:
        """Whether the apply changed anything (no commit and no new generation otherwise)."""
        return any(s != "unchanged" for s in self.status.values()) or any(self.notes.values())

    def apply(self, resources: list[Resource]) -> list[str]:
        seen: dict[Key, Resource] = {}
        for r in resources:
            key = resource_key(r)
            if key in seen:
                self.errors.append(f"{_label(r)}: appears twice in this request; keep one")
            seen[key] = r
        ordered = sorted(seen.values(), key=lambda r: KIND_ORDER.index(r.kind))
        for r in ordered:
            key = resource_key(r)
            prev = self.old.docs.get(key)
            if prev is None:
                self.status[key] = "created"
            elif to_document(prev) == to_document(r):
                self.status[key] = "unchanged"
            else:
                self.status[key] = "configured"
            self.new.docs[key] = r
        changed_layers = {
            (r.metadata.namespace, r.metadata.name) for r in ordered
            if isinstance(r, Layer) and self._plan_layer(r)
        }
        for key, doc in sorted(self.new.docs.items()):
            if not isinstance(doc, Function):
                continue
            uses_changed = any(
                (doc.metadata.namespace, ref.split(":")[0]) in changed_layers
                for ref in doc.spec.layers
            )
            if self.status.get(key) in ("created", "configured") or uses_changed:
                self._plan_function(doc)
        for r in ordered:
            if isinstance(r, Alias):
                self._check_alias(r)
            elif isinstance(r, EventSourceMapping):
                self._check_function_ref(r, r.spec.function_name, "spec.functionName")
        self._check_alias_names(set(seen))
        if self.errors:
            raise ApplyError(self.errors)
        lines = []
        for r in ordered:
            key = resource_key(r)
            notes = self.notes.get(key)
            lines.append(f"{_label(r)} {self.status[key]}" + (f" ({', '.join(notes)})"
                                                               if notes else ""))
        return lines

    def _plan_layer(self, layer: Layer) -> bool:
        """Publishes a new layer version when the spec changed; True if it did."""
        lk = (layer.metadata.namespace, layer.metadata.name)
        versions = self.new.layers.get(lk, [])
        digest_of_spec = content_hash(layer.spec)
        if versions and versions[-1].content_hash == digest_of_spec:
            return False
        try:
            art = self.artifacts.materialize(layer.spec.content, field="spec.content")
        except ArtifactError as exc:
            self.errors.append(f"{_label(layer)}: {exc}")
            return False
        rec = LayerRecord(
            namespace=lk[0], name=lk[1], version=versions[-1].version + 1 if versions else 1,
            content_hash=digest_of_spec, digest=art.digest, code_sha256=art.code_sha256,
            code_size=art.size, path=art.path,
            compatible_runtimes=list(layer.spec.compatible_runtimes),
            description=layer.spec.description, created=self.now,
        )
        self.new.layers[lk] = [*versions, rec]
        self.notes.setdefault(resource_key(layer), []).append(f"version {rec.version}")
        return True

    def _plan_function(self, fn: Function) -> None:
        ns, name = fn.metadata.namespace, fn.metadata.name
        key = resource_key(fn)
        available = {
            lname: [rec.info() for rec in recs]
            for (lns, lname), recs in self.new.layers.items() if lns == ns
        }
        resolved, errs = resolve_layers(fn.spec, available)
        self.errors.extend(f"{_label(fn)}: {e}" for e in errs)
        try:
            code = self.artifacts.materialize(fn.spec.code, field="spec.code")
        except ArtifactError as exc:
            self.errors.append(f"{_label(fn)}: {exc}")
            return
        if errs:
            return
        opt_dir = self.artifacts.merge_layers([self._layer_artifact(ns, la) for la in resolved])
        revision = function_revision(fn.spec, code_digest=code.digest, layers=resolved)
        head = self.new.heads.get((ns, name))
        if head is None or head.revision != revision:
            env = fn.spec.environment.variables if fn.spec.environment else {}
            head = VersionRecord(
                namespace=ns, function_name=name, version=LATEST, revision=revision,
                runtime=fn.spec.runtime, handler=fn.spec.handler or "",
                memory_size=fn.spec.memory_size, timeout=fn.spec.timeout,
                environment=dict(env), code_dir=code.path, opt_dir=opt_dir,
                code_sha256=code.code_sha256, code_size=code.size,
                layers=[[la.name, la.version, la.digest] for la in resolved],
                description=fn.spec.description, last_modified=self.now, role=fn.spec.role,
            )
            self.new.heads[(ns, name)] = head
            if self.status.get(key, "unchanged") == "unchanged":
                self.status[key] = "configured"
                self.notes.setdefault(key, []).append("new layer version")
        if fn.spec.publish:
            published = self.new.versions.get((ns, name), [])
            if not published or published[-1].revision != head.revision:
                number = int(published[-1].version) + 1 if published else 1
                rec = replace(head, version=str(number), last_modified=self.now)
                self.new.versions[(ns, name)] = [*published, rec]
                self.notes.setdefault(key, []).append(f"published version {number}")

    def _layer_artifact(self, ns: str, la: ResolvedLayer) -> Artifact:
        for rec in self.new.layers[(ns, la.name)]:
            if rec.version == la.version:
                return Artifact(rec.digest, rec.code_sha256, rec.code_size, rec.path)
        raise AssertionError("resolved layer vanished")

    def _check_function_ref(self, r: Resource, ref: str, path: str) -> bool:
        fname = ref.split(":")[0]
        if ("Function", r.metadata.namespace, fname) not in self.new.docs:
            self.errors.append(
                f'{_label(r)}: {path}: function "{fname}" does not exist in namespace '
                f'"{r.metadata.namespace}"; apply the Function first'
            )
            return False
        return True

    def _check_alias(self, alias: Alias) -> None:
        ns, spec = alias.metadata.namespace, alias.spec
        exists = ("Function", ns, spec.function_name) in self.new.docs
        published = {r.version for r in self.new.versions.get((ns, spec.function_name), [])}
        for e in check_alias(spec, function_exists=exists, published=published):
            self.errors.append(f"{_label(alias)}: {e}")

    def _check_alias_names(self, applied: set[Key]) -> None:
        owners: dict[tuple[str, str, str], Key] = {}
        for key, doc in sorted(self.new.docs.items()):
            if not isinstance(doc, Alias):
                continue
            target = (key[1], doc.spec.function_name, doc.spec.name)
            other = owners.get(target)
            if other is not None and (key in applied or other in applied):
                mine, theirs = (key, other) if key in applied else (other, key)
                self.errors.append(
                    f"alias/{mine[2]}: spec.name: function {doc.spec.function_name} already has "
                    f"an alias named {doc.spec.name} (alias/{theirs[2]}); choose another name"
                )
            owners.setdefault(target, key)

    def delete(self, keys: list[Key]) -> list[str]:
        lines: list[str] = []
        order = {k: i for i, k in enumerate(reversed(KIND_ORDER))}
        for kind, ns, name in sorted(set(keys), key=lambda k: (order[k[0]], k[1], k[2])):
            label = f"{kind.lower()}/{name}"
            if (kind, ns, name) not in self.new.docs:
                lines.append(f"{label} not found (nothing to delete)")
                continue
            del self.new.docs[(kind, ns, name)]
            self.deleted = True
            lines.append(f"{label} deleted")
            if kind == "Function":
                self.new.heads.pop((ns, name), None)
                self.new.versions.pop((ns, name), None)
                for akey, doc in sorted(self.new.docs.items()):
                    if isinstance(doc, Alias) and akey[1] == ns and doc.spec.function_name == name:
                        del self.new.docs[akey]
                        lines.append(f"alias/{akey[2]} deleted (its function was deleted)")
            elif kind == "Layer":
                self.new.layers.pop((ns, name), None)
        for key, doc in sorted(self.new.docs.items()):
            if isinstance(doc, Function):
                for ref in doc.spec.layers:
                    lname = ref.split(":")[0]
                    if (key[1], lname) not in self.new.layers:
                        self.errors.append(
                            f"layer/{lname}: used by function/{key[2]} (spec.layers); remove it "
                            "there first or delete both together"
                        )
            elif isinstance(doc, EventSourceMapping):
                fname = doc.spec.function_name.split(":")[0]
                if ("Function", key[1], fname) not in self.new.docs:
                    self.errors.append(
                        f"function/{fname}: used by eventsourcemapping/{key[2]}; delete the "
                        "mapping first or both together"
                    )
        if self.errors:
            raise ApplyError(self.errors)
        return lines
