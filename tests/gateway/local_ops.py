"""Test helpers over the real LocalRegistry: the same small write API as FakeRegistry
(add_function / publish / set_alias / set_reserved / delete_function), implemented by
applying manifests exactly as ``klambda apply`` does."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import yaml
from klambda_gateway.local_registry import LocalRegistry
from klambda_gateway.registry import EventInvokeConfig, FunctionConfig, FunctionVersion
from klambda_model import load_documents


class LocalOps(LocalRegistry):
    def __init__(self, state_dir: Path | str) -> None:
        super().__init__(state_dir)
        self._specs: dict[tuple[str, str], dict[str, Any]] = {}

    def _apply(self, doc: dict[str, Any]) -> None:
        self.apply(load_documents(yaml.safe_dump(doc)))

    def add_function(
        self, name: str, code: str, *, namespace: str = "default", handler: str = "app.handler",
        timeout: int = 3, reserved: int | None = None,
        event_invoke_config: EventInvokeConfig | None = None,
        environment: dict[str, str] | None = None,
    ) -> FunctionConfig:
        spec: dict[str, Any] = {
            "runtime": "python3.12", "handler": handler, "timeout": timeout,
            "code": {"inline": {"app.py": textwrap.dedent(code)}},
        }
        if reserved is not None:
            spec["reservedConcurrency"] = reserved
        if environment:
            spec["environment"] = {"variables": environment}
        if event_invoke_config is not None:
            cfg = event_invoke_config
            eic: dict[str, Any] = {"maximumRetryAttempts": cfg.maximum_retry_attempts,
                                   "maximumEventAgeInSeconds": cfg.maximum_event_age_seconds}
            dest: dict[str, Any] = {}
            if cfg.on_success is not None:
                dest["onSuccess"] = {"function": cfg.on_success.function}
            if cfg.on_failure is not None:
                dest["onFailure"] = {"function": cfg.on_failure.function}
            if dest:
                eic["destinationConfig"] = dest
            spec["eventInvokeConfig"] = eic
        self._specs[(namespace, name)] = spec
        self._apply({"apiVersion": "klambda.io/v1alpha1", "kind": "Function",
                     "metadata": {"name": name, "namespace": namespace}, "spec": spec})
        fn = self.function(namespace, name)
        assert fn is not None
        return fn

    def set_reserved(self, name: str, reserved: int | None, *,
                     namespace: str = "default") -> None:
        spec = dict(self._specs[(namespace, name)])
        spec.pop("reservedConcurrency", None)
        if reserved is not None:
            spec["reservedConcurrency"] = reserved
        self._specs[(namespace, name)] = spec
        self._apply({"apiVersion": "klambda.io/v1alpha1", "kind": "Function",
                     "metadata": {"name": name, "namespace": namespace}, "spec": spec})

    def publish(self, name: str, *, namespace: str = "default") -> FunctionVersion:
        return self.publish_version(namespace, name)

    def set_alias(self, function: str, alias: str, version: str, *,
                  weights: dict[str, float] | None = None, provisioned: int = 0,
                  namespace: str = "default") -> None:
        spec: dict[str, Any] = {"functionName": function, "name": alias,
                                "functionVersion": version}
        if weights:
            spec["routingConfig"] = {"additionalVersionWeights": weights}
        if provisioned:
            spec["provisionedConcurrency"] = provisioned
        self._apply({"apiVersion": "klambda.io/v1alpha1", "kind": "Alias",
                     "metadata": {"name": f"{function}-{alias}", "namespace": namespace},
                     "spec": spec})

    def delete_function(self, name: str, *, namespace: str = "default") -> None:
        self.delete([("function", namespace, name)])
