"""Pieces shared by the kinds: metadata, code sources, name patterns, runtimes."""
# ruff: noqa: RUF009  (spec_field is a dataclass field specifier, evaluated once by design)

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from .fields import Constraints, Rule, exactly_one, spec_field

API_VERSION = "klambda.io/v1alpha1"
GROUP = "klambda.io"
VERSION = "v1alpha1"
RUNTIMES = ("python3.11", "python3.12", "provided")
PYTHON_RUNTIMES = ("python3.11", "python3.12")
LATEST = "$LATEST"

DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS_LABEL_HINT = (
    "use lowercase letters, digits and '-', starting and ending with a letter or digit "
    "(at most 63 characters)"
)
NAME = Constraints(pattern=DNS_LABEL, pattern_hint=DNS_LABEL_HINT, min_length=1, max_length=63)
QUALIFIER_PATTERN = r"(\$LATEST|[0-9]+|[a-zA-Z0-9_-]+)"
FUNCTION_REF = Constraints(
    pattern=DNS_LABEL + "(:" + QUALIFIER_PATTERN + ")?",
    pattern_hint="use a function name, optionally with :version or :alias (e.g. audit:live)",
    min_length=1,
    max_length=192,
)
LAYER_REF = Constraints(
    pattern=DNS_LABEL + "(:[1-9][0-9]*)?",
    pattern_hint="use a Layer name, optionally with :version (e.g. shared-deps or shared-deps:3)",
    min_length=1,
    max_length=80,
)
VERSION_NUMBER = r"[1-9][0-9]*"
ARN = Constraints(
    pattern=r"arn:[a-z-]+:[a-z0-9-]+:[a-z0-9-]*:[0-9a-z-]*:.+",
    pattern_hint="use an ARN such as arn:aws:sqs:us-east-1:000000000000:my-queue",
    max_length=1024,
)

# Server-populated metadata that documents round-tripped through kubectl carry.
_SERVER_METADATA = frozenset(
    {
        "uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp",
        "deletionGracePeriodSeconds", "managedFields", "finalizers", "ownerReferences",
        "selfLink", "generateName",
    }
)


@dataclass(frozen=True)
class ObjectMeta:
    """Kubernetes object metadata (only the fields klambda reads)."""

    __ignored__: ClassVar[frozenset[str]] = _SERVER_METADATA

    name: str = spec_field(
        description="Name of the resource (a DNS label: lowercase letters, digits and '-').",
        **NAME.__dict__,
    )
    namespace: str = spec_field(
        default="default",
        description="Namespace; maps to the account field of ARNs (see docs/resources.md).",
        **NAME.__dict__,
    )
    labels: Mapping[str, str] = spec_field(factory=dict, description="Labels.")
    annotations: Mapping[str, str] = spec_field(factory=dict, description="Annotations.")


class Named:
    """``name`` and ``namespace`` of a resource (a mixin of the four kinds)."""

    metadata: ObjectMeta

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str:
        return self.metadata.namespace


def _inline_paths(obj: Mapping[str, Any]) -> str | None:
    inline = obj.get("inline")
    if not isinstance(inline, Mapping):
        return None
    for key in inline:
        k = str(key)
        parts = k.replace("\\", "/").split("/")
        if k.startswith("/") or ".." in parts or "" in parts or "." in parts:
            return (
                f'file name "{k}" must be a relative path without "..", "." or empty parts '
                '(e.g. "app.py" or "lib/util.py")'
            )
    total = sum(len(str(v).encode()) for v in inline.values())
    if total > MAX_INLINE_BYTES:
        return (
            f"inline code is {total} bytes; the maximum is {MAX_INLINE_BYTES}: "
            "use zipFile or url for larger code"
        )
    return None


def _zip_base64(obj: Mapping[str, Any]) -> str | None:
    value = obj.get("zipFile")
    if not isinstance(value, str):
        return None
    try:
        data = base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        return "zipFile is not valid base64: encode the archive with `base64 -w0 code.zip`"
    if not data.startswith(b"PK"):
        return "zipFile does not contain a zip archive (it must be a base64-encoded .zip file)"
    return None


MAX_INLINE_BYTES = 512 * 1024
MAX_ZIPFILE_CHARS = 1_000_000


@dataclass(frozen=True)
class CodeUrl:
    """A zip archive fetched from a URL and checked against its SHA-256."""

    location: str = spec_field(
        description="http(s):// or file:// URL of a .zip archive.",
        pattern=r"(https?|file)://.+",
        pattern_hint="use an http://, https:// or file:// URL",
        max_length=2048,
    )
    sha256: str = spec_field(
        description="Hex SHA-256 of the archive; a mismatch fails the deployment.",
        pattern=r"[0-9a-f]{64}",
        pattern_hint="use the 64 lowercase hex digits printed by `sha256sum code.zip`",
    )


@dataclass(frozen=True)
class ConfigMapRef:
    """Code held in a ConfigMap of the same namespace (Kubernetes only)."""

    name: str = spec_field(description="ConfigMap name.", **NAME.__dict__)
    key: str | None = spec_field(
        default=None,
        description="If set, this key (binaryData) holds a zip archive; otherwise every key "
        "of the ConfigMap is one file.",
        max_length=253,
    )


@dataclass(frozen=True)
class Code:
    """Where the code comes from: exactly one of inline, zipFile, url, configMapRef, image."""

    __rules__: ClassVar[tuple[Rule, ...]] = (
        exactly_one("inline", "zipFile", "url", "configMapRef", "image"),
        Rule(
            message="inline file names must be relative paths",
            check=_inline_paths,
            cel="!has(self.inline) || self.inline.all(k, !k.startsWith('/') && "
            "!k.contains('..'))",
            field="inline",
        ),
        Rule(message="zipFile must be a base64 zip archive", check=_zip_base64, field="zipFile"),
    )

    inline: Mapping[str, str] | None = spec_field(
        default=None,
        description="Files by relative path (e.g. app.py) with their text content. A file "
        "starting with '#!' or named 'bootstrap' is made executable.",
        key=Constraints(min_length=1, max_length=255),
        max_items=1000,
    )
    zip_file: str | None = spec_field(
        default=None,
        description="A base64-encoded zip archive (at most ~730 KB of zip; use url for larger "
        "code).",
        max_length=MAX_ZIPFILE_CHARS,
    )
    url: CodeUrl | None = spec_field(default=None, description="A zip archive at a URL.")
    config_map_ref: ConfigMapRef | None = spec_field(
        default=None, description="Code in a ConfigMap (Kubernetes only)."
    )
    image: str | None = spec_field(
        default=None,
        description="A container image holding the function (Kubernetes only), e.g. an AWS "
        "Lambda base image with the code.",
        min_length=1,
        max_length=512,
    )


@dataclass(frozen=True)
class LayerContent:
    """A layer's files: exactly one of inline, zipFile, url, configMapRef (as Function code,
    without image: Lambda layers are archives)."""

    __rules__: ClassVar[tuple[Rule, ...]] = (
        exactly_one("inline", "zipFile", "url", "configMapRef"),
        Code.__rules__[1],
        Code.__rules__[2],
    )

    inline: Mapping[str, str] | None = spec_field(
        default=None,
        description="Files by relative path (e.g. python/shared.py) with their text content.",
        key=Constraints(min_length=1, max_length=255),
        max_items=1000,
    )
    zip_file: str | None = spec_field(
        default=None,
        description="A base64-encoded zip archive (at most ~730 KB of zip; use url for larger "
        "content).",
        max_length=MAX_ZIPFILE_CHARS,
    )
    url: CodeUrl | None = spec_field(default=None, description="A zip archive at a URL.")
    config_map_ref: ConfigMapRef | None = spec_field(
        default=None, description="Content in a ConfigMap (Kubernetes only)."
    )
    image: ClassVar[None] = None  # layers have no image source (uniform access for artifacts)
