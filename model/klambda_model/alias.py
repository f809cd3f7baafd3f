"""The Alias kind."""
# ruff: noqa: RUF009  (spec_field is a dataclass field specifier, evaluated once by design)

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from .common import API_VERSION, DNS_LABEL, LATEST, VERSION_NUMBER, Named, ObjectMeta
from .fields import Constraints, Rule, spec_field

ALIAS_NAME = Constraints(
    pattern=r"[a-zA-Z0-9_-]+",
    pattern_hint="use letters, digits, '-' and '_'",
    min_length=1,
    max_length=63,
)


def _alias_name_rule(obj: Mapping[str, Any]) -> str | None:
    name = obj.get("name")
    if name == LATEST:
        return "$LATEST is reserved for the unpublished head; choose another alias name"
    if isinstance(name, str) and name.isdigit():
        return f'"{name}" looks like a version number; an alias name must contain a non-digit'
    return None


def _weights(obj: Mapping[str, Any]) -> Mapping[Any, Any]:
    routing = obj.get("routingConfig")
    if not isinstance(routing, Mapping):
        return {}
    weights = routing.get("additionalVersionWeights")
    return weights if isinstance(weights, Mapping) else {}


def _weights_sum_rule(obj: Mapping[str, Any]) -> str | None:
    values = [
        v for v in obj.get("additionalVersionWeights", {}).values()
        if isinstance(v, int | float) and not isinstance(v, bool)
    ] if isinstance(obj.get("additionalVersionWeights"), Mapping) else []
    total = sum(values)
    if total > 1 + 1e-9:
        return (
            f"weights sum to {total:g}; they must sum to at most 1 (the rest goes to "
            "functionVersion)"
        )
    return None


def _alias_routing_rule(obj: Mapping[str, Any]) -> str | None:
    weights = _weights(obj)
    if not weights:
        return None
    version = obj.get("functionVersion")
    if version == LATEST:
        return (
            "weighted routing needs a published functionVersion, not $LATEST "
            "(publish with `klambda publish-version` or spec.publish: true)"
        )
    if str(version) in {str(k) for k in weights}:
        return f"version {version} is the functionVersion; list only the additional versions"
    return None


def _alias_provisioned_rule(obj: Mapping[str, Any]) -> str | None:
    pc = obj.get("provisionedConcurrency")
    if isinstance(pc, int) and pc > 0 and obj.get("functionVersion") == LATEST:
        return (
            "provisioned concurrency needs a published functionVersion, not $LATEST "
            "(publish with `klambda publish-version` or spec.publish: true)"
        )
    return None


@dataclass(frozen=True)
class RoutingConfig:
    """Weighted traffic shifting to additional versions."""

    __rules__: ClassVar[tuple[Rule, ...]] = (
        Rule(
            message="additionalVersionWeights must sum to at most 1",
            check=_weights_sum_rule,
            cel="!has(self.additionalVersionWeights) || "
            "self.additionalVersionWeights.map(k, self.additionalVersionWeights[k])"
            ".sum() <= 1.0",
            field="additionalVersionWeights",
        ),
    )

    additional_version_weights: Mapping[str, float] = spec_field(
        factory=dict,
        description="Share of invocations (0..1) per additional version number; the rest goes "
        "to functionVersion.",
        minimum=0.0,
        maximum=1.0,
        key=Constraints(pattern=VERSION_NUMBER, pattern_hint="use a version number like \"2\"",
                        max_length=10),
        max_items=100,
    )


@dataclass(frozen=True)
class AliasSpec:
    """A named pointer to a function version, with optional weighted routing."""

    __rules__: ClassVar[tuple[Rule, ...]] = (
        Rule(
            message="name must not be $LATEST or a number",
            check=_alias_name_rule,
            cel="self.name != '$LATEST' && !self.name.matches('^[0-9]+$')",
            field="name",
        ),
        Rule(
            message="weighted routing needs a published functionVersion",
            check=_alias_routing_rule,
            cel="!has(self.routingConfig) || !has(self.routingConfig.additionalVersionWeights) "
            "|| size(self.routingConfig.additionalVersionWeights) == 0 || "
            "(self.functionVersion != '$LATEST' && "
            "!(self.functionVersion in self.routingConfig.additionalVersionWeights))",
            field="routingConfig",
        ),
        Rule(
            message="provisioned concurrency needs a published functionVersion",
            check=_alias_provisioned_rule,
            cel="!has(self.provisionedConcurrency) || self.provisionedConcurrency == 0 || "
            "self.functionVersion != '$LATEST'",
            field="provisionedConcurrency",
        ),
    )

    function_name: str = spec_field(
        description="The function (in this namespace).",
        pattern=DNS_LABEL,
        pattern_hint="use the function's metadata.name",
        min_length=1,
        max_length=63,
    )
    name: str = spec_field(
        description="Alias name: the function is invoked as functionName:name.",
        **ALIAS_NAME.__dict__,
    )
    function_version: str = spec_field(
        description='The version the alias points to: a number such as "1", or "$LATEST".',
        pattern=r"(\$LATEST|" + VERSION_NUMBER + ")",
        pattern_hint='use a published version number such as "1", or "$LATEST"',
    )
    description: str = spec_field(default="", description="Description.", max_length=256)
    routing_config: RoutingConfig | None = spec_field(
        default=None, description="Weighted routing."
    )
    provisioned_concurrency: int = spec_field(
        default=0,
        description="Environments kept initialised for this alias ahead of traffic.",
        minimum=0,
    )


@dataclass(frozen=True)
class Alias(Named):
    """A function alias."""

    __ignored__: ClassVar[frozenset[str]] = frozenset({"status"})
    kind_name: ClassVar[str] = "Alias"

    api_version: str = spec_field(description="klambda.io/v1alpha1", enum=(API_VERSION,))
    kind: str = spec_field(description="Alias", enum=("Alias",))
    metadata: ObjectMeta = spec_field(description="Standard object metadata.")
    spec: AliasSpec = spec_field(description="The alias.")


def is_version_number(text: str) -> bool:
    return re.fullmatch(VERSION_NUMBER, text) is not None
