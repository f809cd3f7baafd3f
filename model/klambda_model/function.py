"""The Function kind (and Layer, which shares the code sources)."""
# ruff: noqa: RUF009  (spec_field is a dataclass field specifier, evaluated once by design)

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from .common import (
    API_VERSION,
    ARN,
    FUNCTION_REF,
    LAYER_REF,
    PYTHON_RUNTIMES,
    RUNTIMES,
    Code,
    LayerContent,
    Named,
    ObjectMeta,
)
from .fields import Constraints, Rule, exactly_one, spec_field

RESERVED_ENV = frozenset(
    {
        "_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION",
        "AWS_EXECUTION_ENV", "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
        "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR",
    }
)
MAX_ENV_BYTES = 4096
PY_HANDLER = re.compile(r"[A-Za-z0-9_./-]*[A-Za-z0-9_]\.[A-Za-z_][A-Za-z0-9_]*")


def _env_rule(obj: Mapping[str, Any]) -> str | None:
    variables = obj.get("variables")
    if not isinstance(variables, Mapping):
        return None
    reserved = sorted(str(k) for k in variables if str(k) in RESERVED_ENV)
    if reserved:
        return (
            f"{', '.join(reserved)} {'is' if len(reserved) == 1 else 'are'} reserved by the "
            "platform; choose another name"
        )
    size = sum(len(str(k)) + len(str(v)) for k, v in variables.items())
    if size > MAX_ENV_BYTES:
        return f"variables total {size} bytes; the maximum is {MAX_ENV_BYTES}"
    return None


@dataclass(frozen=True)
class Environment:
    """Environment variables set for the function."""

    __rules__: ClassVar[tuple[Rule, ...]] = (
        Rule(message="reserved variable names", check=_env_rule, field="variables"),
    )

    variables: Mapping[str, str] = spec_field(
        factory=dict,
        description="Variables by name (values are strings: quote numbers and booleans).",
        key=Constraints(
            pattern=r"[a-zA-Z]([a-zA-Z0-9_])*",
            pattern_hint="start with a letter; use letters, digits and '_'",
            max_length=256,
        ),
        max_items=500,
    )


@dataclass(frozen=True)
class Destination:
    """An async destination: another function of the namespace, or an ARN."""

    __rules__: ClassVar[tuple[Rule, ...]] = (exactly_one("function", "arn"),)

    function: str | None = spec_field(
        default=None,
        description="Function name, optionally name:version or name:alias.",
        **FUNCTION_REF.__dict__,
    )
    arn: str | None = spec_field(
        default=None,
        description="A function, queue or topic ARN.",
        **ARN.__dict__,
    )


@dataclass(frozen=True)
class DestinationConfig:
    """Where records of asynchronous invocations go."""

    on_success: Destination | None = spec_field(
        default=None, description="Receives a record of every successful invocation."
    )
    on_failure: Destination | None = spec_field(
        default=None,
        description="Receives a record when retries are exhausted or the event is too old.",
    )


@dataclass(frozen=True)
class EventInvokeConfig:
    """Asynchronous invocation settings."""

    maximum_retry_attempts: int = spec_field(
        default=2,
        description="Retries after a function error (0..2).",
        minimum=0,
        maximum=2,
    )
    maximum_event_age_in_seconds: int = spec_field(
        default=21600,
        description="Events older than this are discarded (60..21600 seconds).",
        minimum=60,
        maximum=21600,
    )
    destination_config: DestinationConfig | None = spec_field(
        default=None, description="On-success and on-failure destinations."
    )


def _handler_rule(obj: Mapping[str, Any]) -> str | None:
    runtime, handler = obj.get("runtime"), obj.get("handler")
    if runtime not in PYTHON_RUNTIMES:
        return None
    if handler is None:
        return f"required for runtime {runtime} (e.g. app.handler: function handler in app.py)"
    if isinstance(handler, str) and not PY_HANDLER.fullmatch(handler):
        return (
            f'"{handler}" is not a Python handler: use module.function, '
            "e.g. app.handler for def handler(event, context) in app.py"
        )
    return None


def _layers_rule(obj: Mapping[str, Any]) -> str | None:
    layers = obj.get("layers")
    if not isinstance(layers, list):
        return None
    names = [str(item).split(":", 1)[0] for item in layers]
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        return f"a layer may appear only once (repeated: {', '.join(dups)})"
    return None


@dataclass(frozen=True)
class FunctionSpec:
    """A function: code plus configuration. $LATEST follows this spec; versions snapshot it."""

    __rules__: ClassVar[tuple[Rule, ...]] = (
        Rule(
            message="handler is required for Python runtimes (module.function)",
            check=_handler_rule,
            cel="!self.runtime.startsWith('python') || has(self.handler)",
            field="handler",
        ),
        Rule(message="a layer may appear only once", check=_layers_rule, field="layers"),
    )

    runtime: str = spec_field(
        description="Runtime: python3.11, python3.12, or provided (an executable 'bootstrap' "
        "in the code implements the Lambda Runtime API, e.g. with awslambdaric).",
        enum=RUNTIMES,
    )
    code: Code = spec_field(description="The function's code.")
    handler: str | None = spec_field(
        default=None,
        description="Handler: module.function for Python runtimes (e.g. app.handler); passed "
        "as _HANDLER to a provided runtime.",
        pattern=r"[^\s]+",
        pattern_hint="the handler must not contain whitespace",
        max_length=128,
    )
    description: str = spec_field(default="", description="Description.", max_length=256)
    memory_size: int = spec_field(
        default=128, description="Memory in MB (128..10240).", minimum=128, maximum=10240
    )
    timeout: int = spec_field(
        default=3, description="Timeout in seconds (1..900).", minimum=1, maximum=900
    )
    environment: Environment | None = spec_field(default=None, description="Environment.")
    layers: tuple[str, ...] = spec_field(
        factory=tuple,
        description="Layers in order (later layers override files of earlier ones): a Layer "
        "name (its latest version) or name:version. At most 5.",
        max_items=5,
        **LAYER_REF.__dict__,
    )
    reserved_concurrency: int | None = spec_field(
        default=None,
        description="Maximum concurrent executions reserved for (and capping) this function; "
        "0 throttles every invocation. Unset: unreserved.",
        minimum=0,
    )
    event_invoke_config: EventInvokeConfig | None = spec_field(
        default=None, description="Asynchronous invocation settings."
    )
    role: str = spec_field(
        default="",
        description="Execution role: a ServiceAccount name on Kubernetes (IRSA on EKS).",
        max_length=253,
    )
    publish: bool = spec_field(
        default=False,
        description="Publish a new version whenever code or configuration changed (like "
        "Lambda's Publish flag on every update). Unchanged specs publish nothing.",
    )


@dataclass(frozen=True)
class Function(Named):
    """A Lambda function."""

    __ignored__: ClassVar[frozenset[str]] = frozenset({"status"})
    kind_name: ClassVar[str] = "Function"

    api_version: str = spec_field(
        description="klambda.io/v1alpha1", enum=(API_VERSION,), crd_default=False
    )
    kind: str = spec_field(description="Function", enum=("Function",))
    metadata: ObjectMeta = spec_field(description="Standard object metadata.")
    spec: FunctionSpec = spec_field(description="The function.")


@dataclass(frozen=True)
class LayerSpec:
    """A layer: files extracted under /opt (Python packages go under python/)."""

    content: LayerContent = spec_field(
        description="The layer's files: exactly one of inline, zipFile, url, configMapRef."
    )
    compatible_runtimes: tuple[str, ...] = spec_field(
        factory=tuple,
        description="Runtimes this layer works with (empty: any).",
        max_items=15,
        enum=RUNTIMES,
    )
    description: str = spec_field(default="", description="Description.", max_length=256)


@dataclass(frozen=True)
class Layer(Named):
    """A Lambda layer; every change of its spec publishes a new layer version."""

    __ignored__: ClassVar[frozenset[str]] = frozenset({"status"})
    kind_name: ClassVar[str] = "Layer"

    api_version: str = spec_field(description="klambda.io/v1alpha1", enum=(API_VERSION,))
    kind: str = spec_field(description="Layer", enum=("Layer",))
    metadata: ObjectMeta = spec_field(description="Standard object metadata.")
    spec: LayerSpec = spec_field(description="The layer.")
