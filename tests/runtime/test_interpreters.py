"""Which interpreter runs a built-in Python runtime (``klambda_runtime.interpreters``).

Covers the choice (pure, on real temporary files): the platform's own version is the
platform's interpreter; ``KLAMBDA_PYTHONX_Y`` first (and a bad value is an error saying
what to do), then ``pythonX.Y`` on PATH (pyenv shims skipped), then pyenv's highest patch
release, else the platform's with ``found=False``. End to end through real agents: a
``python3.12`` function sees ``sys.version_info`` 3.12 and the 3.12 stdlib, still imports
boto3 but not the platform's packages (zygote launcher — forked from the zygote's 3.12
runtime server, see test_runtime_servers.py — and SubprocessLauncher with
``KLAMBDA_PYTHON3_12`` set explicitly, exec'd) — skipped when this machine has no 3.12; a runtime
whose interpreter does not exist runs on the platform's, forked, with one warning line
in the environment's log.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from klambda_runtime import interpreters
from klambda_runtime.launcher import SubprocessLauncher
from klambda_runtime.testing import TestGateway

from .conftest import Environments

module_loop = pytest.mark.asyncio(loop_scope="module")

PLATFORM = (sys.version_info[0], sys.version_info[1])
FOUND_312 = interpreters.choose(
    "python3.12", env=os.environ, platform_python=sys.executable, platform_version=(0, 0)
)
needs_312 = pytest.mark.skipif(
    not FOUND_312.found or PLATFORM == (3, 12), reason="no separate Python 3.12 interpreter"
)

PROBE = """
import importlib, sys

def importable(name):
    try:
        importlib.import_module(name)
        return True
    except ImportError:
        return False

def handler(event, context):
    return {
        "version": list(sys.version_info[:2]),
        "executable": sys.executable,
        "boto3": importable("boto3"),
        "grpc": importable("grpc"),
        "klambda_runtime": importable("klambda_runtime"),
        "stdlib": importable("tomllib"),
    }
"""


def executable(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return str(path)


def choose(runtime: str, env: dict[str, str], which: dict[str, str] | None = None) -> object:
    return interpreters.choose(
        runtime,
        env=env,
        platform_python="/platform/python",
        platform_version=(3, 11),
        which=(which or {}).get,
    )


def test_choice_order(tmp_path: Path) -> None:
    explicit = executable(tmp_path / "explicit" / "python3.12")
    on_path = executable(tmp_path / "bin" / "python3.12")
    shim = executable(tmp_path / "shims" / "python3.12")
    root = tmp_path / "pyenv"
    executable(root / "versions" / "3.12.1" / "bin" / "python3.12")
    best = executable(root / "versions" / "3.12.10" / "bin" / "python3.12")
    executable(root / "versions" / "3.13.0" / "bin" / "python3.13")
    env = {"PYENV_ROOT": str(root), "KLAMBDA_PYTHON3_12": explicit}
    platform = interpreters.Interpreter("/platform/python", (3, 11), platform=True)

    assert choose("python3.11", env) == platform
    assert choose("provided", env) == platform
    assert choose("python3.12", env, {"python3.12": on_path}) == interpreters.Interpreter(
        explicit, (3, 12), platform=False
    )
    del env["KLAMBDA_PYTHON3_12"]
    assert choose("python3.12", env, {"python3.12": on_path}).path == on_path  # type: ignore[attr-defined]
    assert choose("python3.12", env, {"python3.12": shim}).path == best  # type: ignore[attr-defined]
    assert choose("python3.12", env).path == best  # type: ignore[attr-defined]
    missing = choose("python3.9", env)
    assert missing == interpreters.Interpreter(
        "/platform/python", (3, 11), platform=True, found=False
    )
    warning = interpreters.not_found_warning("python3.9", missing)  # type: ignore[arg-type]
    assert "KLAMBDA_PYTHON3_9=" in warning and "on Python 3.11" in warning


def test_bad_explicit_setting_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="KLAMBDA_PYTHON3_12=.* is not an executable file"):
        choose("python3.12", {"KLAMBDA_PYTHON3_12": str(tmp_path / "nope")})


def test_runtime_version() -> None:
    assert interpreters.runtime_version("python3.12") == (3, 12)
    assert interpreters.runtime_version("python3.9") == (3, 9)
    assert interpreters.runtime_version("provided.al2023") is None


@needs_312
@module_loop
async def test_python312_function_runs_on_312(envs: Environments) -> None:
    spec, _ = await envs.function({"app.py": PROBE}, runtime="python3.12")
    result = await envs.gateway.invoke(spec.environment_id, b"{}")
    assert result.function_error == "", result.payload
    assert json.loads(result.payload) == {
        "version": [3, 12],
        "executable": FOUND_312.path,
        "boto3": True,
        "grpc": False,
        "klambda_runtime": False,
        "stdlib": True,
    }


@needs_312
@module_loop
async def test_explicit_setting_through_subprocess_launcher(
    gateway: TestGateway, tmp_path: Path
) -> None:
    link = tmp_path / "mypython" / "python3.12"
    link.parent.mkdir()
    link.symlink_to(FOUND_312.path)
    holder = Environments(
        gateway, SubprocessLauncher(env={**os.environ, "KLAMBDA_PYTHON3_12": str(link)}), tmp_path
    )
    try:
        spec, _ = await holder.function({"app.py": PROBE}, runtime="python3.12")
        result = await gateway.invoke(spec.environment_id, b"{}")
        body = json.loads(result.payload)
        assert body["version"] == [3, 12] and body["executable"] == str(link), body
        assert body["boto3"] and not body["grpc"]
    finally:
        await holder.close()


@module_loop
async def test_missing_interpreter_falls_back_with_one_warning(envs: Environments) -> None:
    app = (
        "import os, sys\n"
        "def handler(event, context):\n"
        "    if event.get('crash'):\n"
        "        os._exit(1)\n"
        "    return list(sys.version_info[:2])\n"
    )
    spec, _ = await envs.function({"app.py": app}, runtime="python3.99")
    result = await envs.gateway.invoke(spec.environment_id, b"{}")
    assert json.loads(result.payload) == list(PLATFORM)
    crashed = await envs.gateway.invoke(spec.environment_id, b'{"crash": true}')
    assert crashed.error_type == "Runtime.ExitError"
    again = await envs.gateway.invoke(spec.environment_id, b"{}")  # a new runtime process
    assert json.loads(again.payload) == list(PLATFORM)
    log = Path(spec.log_path).read_text()
    assert log.count("WARNING no python3.99 interpreter found") == 1, log
    assert log.count("INIT_START") == 2
