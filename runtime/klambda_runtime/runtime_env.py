"""Pure builder of the process environment a Lambda runtime expects (lambda-wire.md §3).

The built-in Python runtime and any ``provided`` bootstrap (awslambdaric, an AWS base
image's entrypoint) read the same variables. The function's own variables come first
and the reserved ones are laid over them, so a function cannot break the contract.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from datetime import datetime

from klambda_runtime.spec import EnvironmentSpec

BUILTIN_PYTHON_PREFIX = "python3"
PROVIDED_PREFIX = "provided"
# Never set: they switch awslambdaric into other modes (lambda-wire.md §3).
FORBIDDEN_VARIABLES = ("AWS_LAMBDA_MAX_CONCURRENCY", "_LAMBDA_TELEMETRY_LOG_FD")
# Taken from the agent's own environment when present (the host's notion of them).
_PASSTHROUGH = ("PATH", "LD_LIBRARY_PATH", "LANG", "HOME", "SYSTEMROOT")


def is_builtin_python(runtime: str) -> bool:
    return runtime.startswith(BUILTIN_PYTHON_PREFIX)


def log_group_name(spec: EnvironmentSpec) -> str:
    return f"/aws/lambda/{spec.function_name}"


def log_stream_name(spec: EnvironmentSpec, *, now: datetime) -> str:
    """``YYYY/MM/DD/[<version>]<32 hex>``, stable for one environment."""
    guid = hashlib.sha256(spec.environment_id.encode()).hexdigest()[:32]
    return f"{now:%Y/%m/%d}/[{spec.version}]{guid}"


def function_arn(spec: EnvironmentSpec) -> str:
    return f"arn:aws:lambda:{spec.region}:{spec.account_id}:function:{spec.function_name}"


def layer_python_paths(opt_dir: str, *, python_version: tuple[int, int]) -> list[str]:
    """Layer directories on the Python search path, in Lambda's order."""
    if not opt_dir:
        return []
    major, minor = python_version
    return [
        os.path.join(opt_dir, "python"),
        os.path.join(opt_dir, "python", "lib", f"python{major}.{minor}", "site-packages"),
    ]


def layer_sys_path(opt_dir: str, *, python_version: tuple[int, int]) -> list[str]:
    """Layer directories in the order Lambda's Python runtimes put them on ``sys.path``
    (``/opt/python/lib/pythonX.Y/site-packages``, then ``/opt/python``)."""
    return list(reversed(layer_python_paths(opt_dir, python_version=python_version)))


def runtime_imports(
    spec: EnvironmentSpec, *, python_version: tuple[int, int], provided: str | None
) -> dict[str, list[str]]:
    """What the built-in runtime process may import from (see ``pyruntime.isolation``):
    ``front`` = task root then layers, ``provided`` = the Lambda-provided libraries."""
    return {
        "front": [spec.code_dir, *layer_sys_path(spec.opt_dir, python_version=python_version)],
        "provided": [provided] if provided else [],
    }


# The exec'd built-in runtime: klambda_runtime importable for its own start only (the
# interpreter need not have klambda installed), then isolated like a forked one.
_EXEC_BOOT = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from klambda_runtime.pyruntime.isolation import exec_main; sys.exit(exec_main(sys.argv[2]))"
)
RUNTIME_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def builtin_exec_argv(python: str, imports: Mapping[str, list[str]]) -> list[str]:
    """argv of an exec'd built-in Python runtime (native libraries, no template, 3.12...)."""
    import json

    return [python, "-c", _EXEC_BOOT, RUNTIME_PACKAGE_PARENT, json.dumps(dict(imports))]


def native_lib_dirs(spec: EnvironmentSpec) -> list[str]:
    """The function's shared-library directories that exist (``<code>/lib``, ``<opt>/lib``)."""
    candidates = [os.path.join(spec.code_dir, "lib")]
    if spec.opt_dir:
        candidates.append(os.path.join(spec.opt_dir, "lib"))
    return [d for d in candidates if os.path.isdir(d)]


def _join(*parts: str) -> str:
    return os.pathsep.join(p for p in parts if p)


def build_runtime_env(
    spec: EnvironmentSpec,
    *,
    api_address: str,
    host_env: Mapping[str, str],
    python_version: tuple[int, int],
    now: datetime,
    initialization_type: str | None = None,
    lang_bin: str = "",
) -> dict[str, str]:
    """Everything the runtime process sees in ``os.environ``; nothing else leaks in.

    ``lang_bin`` (the directory of the interpreter klambda runs on) leads ``PATH`` the way
    ``/var/lang/bin`` does in Lambda, so ``python3`` in a bootstrap is that interpreter.
    """
    env: dict[str, str] = {
        k: v for k, v in spec.environment.items() if k not in FORBIDDEN_VARIABLES
    }
    for key in _PASSTHROUGH:
        if key in host_env:
            env.setdefault(key, host_env[key])
    opt = spec.opt_dir
    host_path = host_env.get("PATH", "/usr/local/bin:/usr/bin:/bin")
    if lang_bin and lang_bin in host_path.split(os.pathsep):
        lang_bin = ""
    path = _join(lang_bin, host_path, os.path.join(opt, "bin") if opt else "")
    ld_path = _join(
        host_env.get("LD_LIBRARY_PATH", ""),
        os.path.join(spec.code_dir, "lib"),
        os.path.join(opt, "lib") if opt else "",
    )
    env.update(
        {
            "AWS_LAMBDA_RUNTIME_API": api_address,
            "_HANDLER": spec.handler,
            "LAMBDA_TASK_ROOT": spec.code_dir,
            "AWS_LAMBDA_FUNCTION_NAME": spec.function_name,
            "AWS_LAMBDA_FUNCTION_VERSION": spec.version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_size),
            "AWS_LAMBDA_LOG_GROUP_NAME": log_group_name(spec),
            "AWS_LAMBDA_LOG_STREAM_NAME": log_stream_name(spec, now=now),
            "AWS_LAMBDA_INITIALIZATION_TYPE": initialization_type or spec.initialization_type,
            "AWS_REGION": spec.region,
            "AWS_DEFAULT_REGION": spec.region,
            "TZ": ":UTC",
            "LANG": env.get("LANG", "en_US.UTF-8"),
            "PATH": path,
        }
    )
    if ld_path:
        env["LD_LIBRARY_PATH"] = ld_path
    else:
        env.pop("LD_LIBRARY_PATH", None)
    if is_builtin_python(spec.runtime):
        # Lambda defines AWS_EXECUTION_ENV for managed runtimes only, not for provided.*
        env["AWS_EXECUTION_ENV"] = f"AWS_Lambda_{spec.runtime}"
        env["LAMBDA_RUNTIME_DIR"] = os.path.dirname(os.path.abspath(__file__))
        env["PYTHONPATH"] = _join(*layer_python_paths(opt, python_version=python_version))
        env["PYTHONUNBUFFERED"] = "1"
        if not env["PYTHONPATH"]:
            del env["PYTHONPATH"]
    for key in FORBIDDEN_VARIABLES:
        env.pop(key, None)
    return env
