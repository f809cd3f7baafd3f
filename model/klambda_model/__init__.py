"""klambda's resource model: Function, Layer, Alias, EventSourceMapping (klambda.io/v1alpha1).

The single source of truth for field names, types, bounds, defaults, descriptions and
validation rules; the CRDs are generated from it (:func:`crd_schema`). Pure: no I/O and no
clock.
"""

from .alias import Alias, AliasSpec, RoutingConfig, is_version_number
from .common import (
    API_VERSION,
    LATEST,
    PYTHON_RUNTIMES,
    RUNTIMES,
    Code,
    CodeUrl,
    ConfigMapRef,
    LayerContent,
    ObjectMeta,
)
from .errors import ModelError, ValidationError
from .esm import EventSourceMapping, EventSourceMappingSpec
from .function import (
    Destination,
    DestinationConfig,
    Environment,
    EventInvokeConfig,
    Function,
    FunctionSpec,
    Layer,
    LayerSpec,
)
from .loader import (
    KIND_ORDER,
    KINDS,
    Resource,
    canonical_json,
    content_hash,
    decode_document,
    load_documents,
    parse_documents,
    resource_key,
    to_document,
)

__all__ = [
    "API_VERSION", "KINDS", "KIND_ORDER", "LATEST", "PYTHON_RUNTIMES", "RUNTIMES", "Alias",
    "AliasSpec", "Code", "CodeUrl", "ConfigMapRef", "Destination", "DestinationConfig",
    "Environment", "EventInvokeConfig", "EventSourceMapping", "EventSourceMappingSpec",
    "Function", "FunctionSpec", "Layer", "LayerContent", "LayerSpec", "ModelError", "ObjectMeta", "Resource",
    "RoutingConfig", "ValidationError", "canonical_json", "content_hash", "decode_document",
    "is_version_number", "load_documents", "parse_documents", "resource_key", "to_document",
]
