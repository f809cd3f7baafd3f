"""Loading documents: multi-document YAML/JSON text -> validated resources, and back."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any

import yaml

from .alias import Alias
from .common import API_VERSION
from .decode import decode, object_fields
from .errors import ValidationError
from .esm import EventSourceMapping
from .function import Function, Layer

Resource = Function | Layer | Alias | EventSourceMapping
KINDS: dict[str, type[Any]] = {
    "Function": Function,
    "Layer": Layer,
    "Alias": Alias,
    "EventSourceMapping": EventSourceMapping,
}
# Apply order: what others refer to first. Delete goes in reverse.
KIND_ORDER = ("Layer", "Function", "Alias", "EventSourceMapping")


class _Loader(yaml.SafeLoader):  # type: ignore[misc]
    """SafeLoader that keeps timestamps as strings (as Kubernetes does)."""


_Loader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def parse_documents(text: str, *, source: str = "<input>") -> list[Any]:
    """YAML or JSON text -> raw documents (empty ones dropped; `kind: List` flattened)."""
    docs: list[Any] | None = None
    if text.lstrip()[:1] in ("[", "{"):
        try:  # fast path: JSON (e.g. what the CLI sends)
            parsed = json.loads(text)
            docs = [parsed]
        except ValueError:
            docs = None
    try:
        if docs is None:
            docs = [d for d in yaml.load_all(text, Loader=_Loader) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise ValidationError([f"{where}: not valid YAML/JSON: {problem}"]) from None
    flat: list[Any] = []
    for doc in docs:
        if isinstance(doc, list):
            flat.extend(doc)
        elif isinstance(doc, Mapping) and doc.get("kind") == "List":
            flat.extend(doc.get("items") or [])
        else:
            flat.append(doc)
    return flat


def document_label(doc: Any, index: int, source: str) -> str:
    label = f"{source}[{index}]"
    if isinstance(doc, Mapping):
        kind = doc.get("kind") or "?"
        meta = doc.get("metadata")
        name = meta.get("name") if isinstance(meta, Mapping) else None
        label += f" {kind}/{name or '?'}"
    return label


def decode_document(doc: Any, *, label: str = "") -> Resource:
    """Validates one raw document; raises ValidationError with every problem found."""
    prefix = f"{label}: " if label else ""
    if not isinstance(doc, Mapping):
        raise ValidationError([f"{prefix}a document must be an object, got {type(doc).__name__}"])
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    errors: list[str] = []
    if api_version != API_VERSION:
        errors.append(f"{prefix}apiVersion: must be {API_VERSION} (got {api_version!r})")
    cls = KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        errors.append(f"{prefix}kind: must be one of {', '.join(KINDS)} (got {kind!r})")
    if errors:
        raise ValidationError(errors)
    assert cls is not None
    found: list[str] = []
    resource = decode(cls, doc, "", found)
    if found or resource is None:
        raise ValidationError([prefix + e for e in found])
    result: Resource = resource
    return result


def load_documents(
    text: str, *, source: str = "<input>", default_namespace: str | None = None
) -> list[Resource]:
    """Multi-document YAML/JSON -> resources. Errors of every document are collected and
    each names its document: ``file.yaml[1] Function/hello: spec.timeout: ...``.
    ``default_namespace`` is used for documents without metadata.namespace (kubectl -n)."""
    docs = parse_documents(text, source=source)
    errors: list[str] = []
    out: list[Resource] = []
    for index, doc in enumerate(docs):
        if default_namespace is not None and isinstance(doc, dict):
            meta = doc.get("metadata")
            if isinstance(meta, dict) and not meta.get("namespace"):
                meta["namespace"] = default_namespace
        try:
            out.append(decode_document(doc, label=document_label(doc, index, source)))
        except ValidationError as exc:
            errors.extend(exc.errors)
    if errors:
        raise ValidationError(errors)
    return out


def to_document(obj: Any) -> Any:
    """A resource (or any part of one) -> plain JSON data with the manifests' field names.
    Fields holding their default are omitted, so the output is canonical."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out: dict[str, Any] = {}
        for info, f in zip(object_fields(type(obj)), dataclasses.fields(obj), strict=True):
            value = getattr(obj, info.attr)
            if f.default is not dataclasses.MISSING and value == f.default:
                continue
            if f.default_factory is not dataclasses.MISSING and value == f.default_factory():
                continue
            out[info.json] = to_document(value)
        return out
    if isinstance(obj, Mapping):
        return {str(k): to_document(v) for k, v in sorted(obj.items())}
    if isinstance(obj, tuple | list):
        return [to_document(v) for v in obj]
    return obj


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(data: Any) -> str:
    """Hex SHA-256 of the canonical JSON of ``data`` (a resource part or plain data)."""
    plain = to_document(data)
    return hashlib.sha256(canonical_json(plain).encode()).hexdigest()


def resource_key(resource: Resource) -> tuple[str, str, str]:
    return (resource.kind, resource.metadata.namespace, resource.metadata.name)
