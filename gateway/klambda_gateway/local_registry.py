"""The local desired-state registry of ``klambda up``: SQLite under the state directory.

Reads (the :class:`~klambda_gateway.registry.Registry` Protocol) come from an immutable
in-memory snapshot that is swapped atomically after every committed write, so they cost a
dict lookup. Writes (apply / delete / publish) are serialised by a lock, computed against
the current state, checked as a whole (an apply is all-or-nothing), materialised
(:mod:`klambda_gateway.artifacts`) and committed in one SQLite transaction.

Storage: ``<state>/registry.db`` with the applied documents, the $LATEST head of each
function, published function versions and layer versions (each a JSON record);
artifacts under ``<state>/artifacts``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
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
    ValidationError,
    content_hash,
    decode_document,
    resource_key,
    to_document,
)
from klambda_model import EventInvokeConfig as ModelEventInvokeConfig
from klambda_model.resolve import (
    LayerVersionInfo,
    ResolvedLayer,
    check_alias,
    function_revision,
    resolve_layers,
)

from .artifacts import ArtifactError, ArtifactStore
from .registry import (
    AliasConfig,
    Destination,
    EventInvokeConfig,
    FunctionConfig,
    FunctionVersion,
)

Key = tuple[str, str, str]  # (kind, namespace, name)
log = logging.getLogger(__name__)


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


def lambda_time(now: float) -> str:
    """Lambda's timestamp format: 2024-01-01T00:00:00.000+0000."""
    ms = round((now % 1) * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{ms:03d}+0000"


@dataclass(frozen=True)
class VersionRecord:
    """A function version ($LATEST head or published) as stored."""

    namespace: str
    function_name: str
    version: str
    revision: str
    runtime: str
    handler: str
    memory_size: int
    timeout: int
    environment: dict[str, str]
    code_dir: str
    opt_dir: str
    code_sha256: str
    code_size: int
    layers: list[list[Any]]  # [name, version, digest]
    description: str
    last_modified: str
    role: str = ""
    image: str = ""

    def runnable(self) -> FunctionVersion:
        return FunctionVersion(
            namespace=self.namespace, function_name=self.function_name, version=self.version,
            revision=self.revision, runtime=self.runtime, handler=self.handler,
            memory_size=self.memory_size, timeout=self.timeout,
            environment=dict(self.environment), code_dir=self.code_dir, opt_dir=self.opt_dir,
            image=self.image, role=self.role,
        )


@dataclass(frozen=True)
class LayerRecord:
    namespace: str
    name: str
    version: int
    content_hash: str
    digest: str
    code_sha256: str
    code_size: int
    path: str
    compatible_runtimes: list[str]
    description: str
    created: str

    def info(self) -> LayerVersionInfo:
        return LayerVersionInfo(self.version, self.digest, tuple(self.compatible_runtimes))


@dataclass
class _State:
    """A mutable working copy of the whole desired state (built, checked, then frozen)."""

    docs: dict[Key, Resource] = field(default_factory=dict)
    heads: dict[tuple[str, str], VersionRecord] = field(default_factory=dict)
    versions: dict[tuple[str, str], list[VersionRecord]] = field(default_factory=dict)
    layers: dict[tuple[str, str], list[LayerRecord]] = field(default_factory=dict)

    def copy(self) -> _State:
        return _State(
            docs=dict(self.docs), heads=dict(self.heads),
            versions={k: list(v) for k, v in self.versions.items()},
            layers={k: list(v) for k, v in self.layers.items()},
        )


@dataclass(frozen=True)
class _Snapshot:
    state: _State
    functions: Mapping[tuple[str, str], FunctionConfig]
    versions: Mapping[tuple[str, str, str], FunctionVersion]
    aliases: Mapping[tuple[str, str, str], AliasConfig]
    function_list: tuple[FunctionConfig, ...]
    alias_list: tuple[AliasConfig, ...]


def _event_invoke_config(cfg: ModelEventInvokeConfig | None) -> EventInvokeConfig:
    if cfg is None:
        return EventInvokeConfig()
    dc = cfg.destination_config

    def dest(d: Any) -> Destination | None:
        return None if d is None else Destination(function=d.function or "", arn=d.arn or "")

    return EventInvokeConfig(
        maximum_retry_attempts=cfg.maximum_retry_attempts,
        maximum_event_age_seconds=cfg.maximum_event_age_in_seconds,
        on_success=dest(dc.on_success) if dc else None,
        on_failure=dest(dc.on_failure) if dc else None,
    )


def build_snapshot(state: _State) -> _Snapshot:
    """Pure: the working state -> the immutable read model of the data path."""
    functions: dict[tuple[str, str], FunctionConfig] = {}
    versions: dict[tuple[str, str, str], FunctionVersion] = {}
    for (ns, name), head in state.heads.items():
        doc = state.docs.get(("Function", ns, name))
        if not isinstance(doc, Function):
            continue
        latest = head.runnable()
        versions[(ns, name, LATEST)] = latest
        published = state.versions.get((ns, name), [])
        for rec in published:
            versions[(ns, name, rec.version)] = rec.runnable()
        functions[(ns, name)] = FunctionConfig(
            namespace=ns, name=name, latest=latest,
            reserved_concurrency=doc.spec.reserved_concurrency,
            event_invoke_config=_event_invoke_config(doc.spec.event_invoke_config),
            published_versions=tuple(r.version for r in published),
        )
    aliases: dict[tuple[str, str, str], AliasConfig] = {}
    for (kind, ns, _), doc in sorted(state.docs.items()):
        if kind != "Alias" or not isinstance(doc, Alias):
            continue
        spec = doc.spec
        weights = spec.routing_config.additional_version_weights if spec.routing_config else {}
        aliases[(ns, spec.function_name, spec.name)] = AliasConfig(
            namespace=ns, function_name=spec.function_name, name=spec.name,
            function_version=spec.function_version,
            additional_version_weights=dict(weights),
            provisioned_concurrency=spec.provisioned_concurrency,
        )
    return _Snapshot(
        state=state, functions=functions, versions=versions, aliases=aliases,
        function_list=tuple(functions[k] for k in sorted(functions)),
        alias_list=tuple(aliases[k] for k in sorted(aliases)),
    )


def _label(resource: Resource) -> str:
    return f"{resource.kind.lower()}/{resource.metadata.name}"


# --- storage: small functions over one SQLite connection -------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS resources (
    kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (kind, namespace, name));
CREATE TABLE IF NOT EXISTS heads (
    namespace TEXT NOT NULL, name TEXT NOT NULL, record TEXT NOT NULL,
    PRIMARY KEY (namespace, name));
CREATE TABLE IF NOT EXISTS versions (
    namespace TEXT NOT NULL, name TEXT NOT NULL, version INTEGER NOT NULL, record TEXT NOT NULL,
    PRIMARY KEY (namespace, name, version));
CREATE TABLE IF NOT EXISTS layer_versions (
    namespace TEXT NOT NULL, name TEXT NOT NULL, version INTEGER NOT NULL, record TEXT NOT NULL,
    PRIMARY KEY (namespace, name, version));
"""
_TABLES = {
    "resources": ("kind", "namespace", "name", "doc"),
    "heads": ("namespace", "name", "record"),
    "versions": ("namespace", "name", "version", "record"),
    "layer_versions": ("namespace", "name", "version", "record"),
}


def create_schema(db: sqlite3.Connection) -> None:
    db.executescript(_SCHEMA)


def _dumps(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def flatten(state: _State) -> dict[str, dict[tuple[Any, ...], str]]:
    """The state as rows per table: key columns -> JSON value."""
    return {
        "resources": {k: _dumps(to_document(r)) for k, r in state.docs.items()},
        "heads": {k: _dumps(asdict(r)) for k, r in state.heads.items()},
        "versions": {
            (ns, name, int(r.version)): _dumps(asdict(r))
            for (ns, name), recs in state.versions.items() for r in recs
        },
        "layer_versions": {
            (ns, name, r.version): _dumps(asdict(r))
            for (ns, name), recs in state.layers.items() for r in recs
        },
    }


def write_changes(db: sqlite3.Connection, old: _State, new: _State) -> None:
    """Writes the difference between two states in one transaction."""
    before, after = flatten(old), flatten(new)
    db.execute("BEGIN IMMEDIATE")
    try:
        for table, columns in _TABLES.items():
            keys = columns[:-1]
            where = " AND ".join(f"{c} = ?" for c in keys)
            for key in before[table].keys() - after[table].keys():
                db.execute(f"DELETE FROM {table} WHERE {where}", key)
            for key, value in after[table].items():
                if before[table].get(key) != value:
                    db.execute(
                        f"INSERT OR REPLACE INTO {table} ({', '.join(columns)}) "
                        f"VALUES ({', '.join('?' for _ in columns)})",
                        (*key, value),
                    )
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def load_state(db: sqlite3.Connection) -> _State:
    state = _State()
    for kind, ns, name, doc in db.execute("SELECT kind, namespace, name, doc FROM resources"):
        try:
            state.docs[(kind, ns, name)] = decode_document(json.loads(doc))
        except (ValidationError, ValueError) as exc:
            # Stored by an older klambda whose model accepted it: keep serving the rest.
            log.warning("skipping stored %s/%s in namespace %s: %s; re-apply a fixed manifest",
                        kind, name, ns, exc)
    for ns, name, record in db.execute("SELECT namespace, name, record FROM heads"):
        state.heads[(ns, name)] = VersionRecord(**json.loads(record))
    for ns, name, _, record in db.execute(
        "SELECT namespace, name, version, record FROM versions ORDER BY version"
    ):
        state.versions.setdefault((ns, name), []).append(VersionRecord(**json.loads(record)))
    for ns, name, _, record in db.execute(
        "SELECT namespace, name, version, record FROM layer_versions ORDER BY version"
    ):
        state.layers.setdefault((ns, name), []).append(LayerRecord(**json.loads(record)))
    return state


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
        state = self._snap.state
        head = state.heads.get((namespace, name))
        return ([head] if head else []) + list(state.versions.get((namespace, name), []))

    def layer_records(self, namespace: str, name: str | None = None) -> list[LayerRecord]:
        """Layer versions of a namespace (one layer if ``name``), by name then version."""
        return [rec for (ns, lname), recs in sorted(self._snap.state.layers.items())
                if ns == namespace and (name is None or lname == name) for rec in recs]

    def list_functions(self, namespace: str | None = None) -> list[dict[str, Any]]:
        out = []
        for cfg in self._snap.function_list:
            if namespace is not None and cfg.namespace != namespace:
                continue
            head = self._snap.state.heads[(cfg.namespace, cfg.name)]
            out.append({
                "namespace": cfg.namespace, "name": cfg.name, "runtime": head.runtime,
                "handler": head.handler, "memorySize": head.memory_size,
                "timeout": head.timeout, "revision": head.revision,
                "codeSha256": head.code_sha256, "codeSize": head.code_size,
                "lastModified": head.last_modified, "description": head.description,
                "layers": [f"{n}:{v}" for n, v, _ in head.layers],
                "latestVersion": cfg.published_versions[-1] if cfg.published_versions else None,
                "versions": list(cfg.published_versions),
                "reservedConcurrency": cfg.reserved_concurrency,
            })
        return out

    def list_versions(
        self, namespace: str | None = None, name: str | None = None
    ) -> list[dict[str, Any]]:
        out = []
        for cfg in self._snap.function_list:
            if (namespace is not None and cfg.namespace != namespace) or (
                name is not None and cfg.name != name
            ):
                continue
            for rec in self.version_records(cfg.namespace, cfg.name):
                out.append({
                    "namespace": rec.namespace, "function": rec.function_name,
                    "version": rec.version, "revision": rec.revision,
                    "runtime": rec.runtime, "handler": rec.handler,
                    "memorySize": rec.memory_size, "timeout": rec.timeout,
                    "codeSha256": rec.code_sha256, "description": rec.description,
                    "lastModified": rec.last_modified,
                    "layers": [f"{n}:{v}" for n, v, _ in rec.layers],
                })
        return out

    def list_aliases(
        self, namespace: str | None = None, function: str | None = None
    ) -> list[dict[str, Any]]:
        out = []
        for doc in self.resources("Alias", namespace):
            assert isinstance(doc, Alias)
            spec = doc.spec
            if function is not None and spec.function_name != function:
                continue
            weights = spec.routing_config.additional_version_weights if spec.routing_config else {}
            out.append({
                "namespace": doc.metadata.namespace, "resource": doc.metadata.name,
                "function": spec.function_name, "name": spec.name,
                "functionVersion": spec.function_version,
                "additionalVersionWeights": dict(weights),
                "provisionedConcurrency": spec.provisioned_concurrency,
                "description": spec.description,
            })
        return out

    def list_layers(self, namespace: str | None = None) -> list[dict[str, Any]]:
        out = []
        for (ns, _), recs in sorted(self._snap.state.layers.items()):
            if namespace is not None and ns != namespace:
                continue
            for rec in recs:
                out.append({
                    "namespace": rec.namespace, "name": rec.name, "version": rec.version,
                    "codeSha256": rec.code_sha256, "codeSize": rec.code_size,
                    "compatibleRuntimes": list(rec.compatible_runtimes),
                    "description": rec.description, "created": rec.created,
                })
        return out

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

    def _commit(self, old: _State, new: _State) -> None:
        write_changes(self._db, old, new)
        self._snap = build_snapshot(new)
        self._generation += 1
        self._notify()

    def _now(self) -> str:
        return lambda_time(self._clock())


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class _Planner:
    """Computes one change of the desired state on a working copy; raises ApplyError."""

    def __init__(self, registry: LocalRegistry, old: _State, new: _State) -> None:
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

    def _layer_artifact(self, ns: str, la: ResolvedLayer) -> Any:
        from .artifacts import Artifact

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
