"""The operator's one settings object, built from the environment at the edge (``from_env``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from klambda_operator.resources.deployment import DeploymentSettings

DEFAULT_IMAGE = "ghcr.io/klambda/runtime-python:0.1.0"
DEFAULT_GATEWAY_GRPC = "klambda-gateway.klambda-system.svc:50051"
# The gateway's lane (klambda_proto.lane) for function pods; set the variable to "" to keep
# them on gRPC (e.g. a gateway with KLAMBDA_LANE_ENABLED=0 or a network that blocks the port).
DEFAULT_GATEWAY_LANE = "klambda-gateway.klambda-system.svc:50052"


@dataclass(frozen=True)
class OperatorSettings:
    deployment: DeploymentSettings
    namespaces: tuple[str, ...] = ()  # empty: every namespace
    resync_seconds: float = 30.0  # periodic re-reconcile (self-healing, layer/alias updates)
    verify_urls: bool = True  # download code URLs at reconcile to report checksum mismatches
    retry_seconds: float = 10.0
    liveness_endpoint: str = ""  # e.g. http://0.0.0.0:8080/healthz

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorSettings:
        e = os.environ if env is None else env
        image = e.get("KLAMBDA_RUNTIME_IMAGE", DEFAULT_IMAGE)
        images = {
            "provided": image,
            "python3.12": image,
            "python3.11": e.get("KLAMBDA_RUNTIME_IMAGE_PY311", image + "-py3.11"),
        }
        deployment = DeploymentSettings(
            gateway_address=e.get("KLAMBDA_GATEWAY_GRPC_ADDRESS", DEFAULT_GATEWAY_GRPC),
            lane_address=e.get("KLAMBDA_GATEWAY_LANE_ADDRESS", DEFAULT_GATEWAY_LANE).strip(),
            runtime_images=images,
            image_pull_policy=e.get("KLAMBDA_IMAGE_PULL_POLICY", "IfNotPresent"),
            python=e.get("KLAMBDA_FUNCTION_PYTHON", "python"),
            run_as_user=int(e.get("KLAMBDA_FUNCTION_RUN_AS_USER", "1000")),
            region=e.get("KLAMBDA_REGION", "us-east-1"),
            account_id=e.get("KLAMBDA_ACCOUNT_ID", "000000000000"),
        )
        namespaces = tuple(
            n.strip() for n in e.get("KLAMBDA_WATCH_NAMESPACES", "").split(",") if n.strip()
        )
        return cls(
            deployment=deployment,
            namespaces=namespaces,
            resync_seconds=float(e.get("KLAMBDA_OPERATOR_RESYNC_SECONDS", "30")),
            verify_urls=e.get("KLAMBDA_OPERATOR_VERIFY_URLS", "1") not in ("0", "false", ""),
            retry_seconds=float(e.get("KLAMBDA_OPERATOR_RETRY_SECONDS", "10")),
            liveness_endpoint=e.get("KLAMBDA_OPERATOR_LIVENESS", ""),
        )
