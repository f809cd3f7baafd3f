"""What one execution environment is: the inputs of the agent.

The local substrate builds an :class:`EnvironmentSpec` and hands it to a launcher;
on Kubernetes the same values arrive as ``KLAMBDA_*`` environment variables of the
pod (``to_env`` / ``from_env`` are the two directions of that mapping).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

_PREFIX = "KLAMBDA_ENV_"


@dataclass(frozen=True)
class EnvironmentSpec:
    environment_id: str
    gateway: str  # host:port of the gateway's gRPC endpoint
    namespace: str
    function_name: str
    version: str  # "$LATEST" or "1", "2", ...
    runtime: str  # python3.11 | python3.12 | provided
    handler: str
    code_dir: str  # becomes LAMBDA_TASK_ROOT
    opt_dir: str = ""  # merged layers (what Lambda mounts at /opt); "" = none
    memory_size: int = 128  # MB
    timeout: int = 3  # seconds
    environment: Mapping[str, str] = field(default_factory=dict)  # the function's variables
    initialization_type: str = "on-demand"  # or provisioned-concurrency
    region: str = "us-east-1"
    account_id: str = "000000000000"
    revision: str = ""  # the FunctionVersion revision this environment runs
    log_path: str = ""  # append the environment's stdout/stderr here; "" = inherit
    # host:port of the gateway's lane (the same stream without HTTP/2, klambda_proto.lane);
    # "" = use gRPC. The agent falls back to gRPC while the lane cannot be reached.
    lane: str = ""

    def to_env(self) -> dict[str, str]:
        """The ``KLAMBDA_ENV_*`` variables that describe this environment to the agent."""
        return {
            _PREFIX + "ID": self.environment_id,
            _PREFIX + "GATEWAY": self.gateway,
            _PREFIX + "NAMESPACE": self.namespace,
            _PREFIX + "FUNCTION": self.function_name,
            _PREFIX + "VERSION": self.version,
            _PREFIX + "RUNTIME": self.runtime,
            _PREFIX + "HANDLER": self.handler,
            _PREFIX + "CODE_DIR": self.code_dir,
            _PREFIX + "OPT_DIR": self.opt_dir,
            _PREFIX + "MEMORY_SIZE": str(self.memory_size),
            _PREFIX + "TIMEOUT": str(self.timeout),
            _PREFIX + "VARIABLES": json.dumps(dict(self.environment), sort_keys=True),
            _PREFIX + "INITIALIZATION_TYPE": self.initialization_type,
            _PREFIX + "REGION": self.region,
            _PREFIX + "ACCOUNT_ID": self.account_id,
            _PREFIX + "REVISION": self.revision,
            _PREFIX + "LOG_PATH": self.log_path,
            _PREFIX + "LANE": self.lane,
        }

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> EnvironmentSpec:
        def get(name: str, default: str = "") -> str:
            return env.get(_PREFIX + name, default)

        return cls(
            environment_id=get("ID"),
            gateway=get("GATEWAY"),
            namespace=get("NAMESPACE", "default"),
            function_name=get("FUNCTION"),
            version=get("VERSION", "$LATEST"),
            runtime=get("RUNTIME", "python3.12"),
            handler=get("HANDLER"),
            code_dir=get("CODE_DIR"),
            opt_dir=get("OPT_DIR"),
            memory_size=int(get("MEMORY_SIZE", "128")),
            timeout=int(get("TIMEOUT", "3")),
            environment=json.loads(get("VARIABLES", "{}")),
            initialization_type=get("INITIALIZATION_TYPE", "on-demand"),
            region=get("REGION", "us-east-1"),
            account_id=get("ACCOUNT_ID", "000000000000"),
            revision=get("REVISION"),
            lane=get("LANE"),
            log_path=get("LOG_PATH"),
        )
