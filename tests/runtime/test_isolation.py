"""What a function on the built-in Python runtime can import (Lambda: its code, its layers,
the standard library, boto3/botocore and their dependencies — nothing of the platform's).

Covers, for each way a runtime process starts — forked by the zygote, forked by the
per-environment template (SubprocessLauncher, pods), exec'd (a function with ``<code>/lib``):
platform packages (grpc, aiohttp, yaml, psutil, klambda_runtime) are not importable and a
handler importing one fails init with Lambda's ``Runtime.ImportModuleError`` message;
boto3 and botocore import (and their distribution metadata is found); a function's own
module named like a platform package (``yaml``) is its own, and a layer's own boto3 wins
over the provided one; ``sys.path`` is task root, layers, provided set, stdlib.
(The pure pieces are in test_isolation_pure.py.)
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from klambda_runtime.launcher import SubprocessLauncher, ZygoteLauncher
from klambda_runtime.testing import TestGateway

from .conftest import PLATFORM_RUNTIME, Environments, error_of

pytestmark = pytest.mark.asyncio(loop_scope="module")

# The platform's own interpreter (the fork paths need it; python3.12 may be exec'd).
RUNTIME = PLATFORM_RUNTIME
PLATFORM_PACKAGES = ("grpc", "aiohttp", "yaml", "psutil", "klambda_runtime", "klambda_proto")

PROBE = """
import importlib, importlib.metadata, sys

def importable(name):
    try:
        importlib.import_module(name)
        return True
    except ImportError:
        return False

def handler(event, context):
    import boto3, botocore, dateutil, jmespath, s3transfer, six, urllib3
    with open("/proc/self/cmdline", "rb") as f:
        cmdline = f.read().replace(b"\\0", b" ").decode()
    return {
        "platform": {n: importable(n) for n in event["names"]},
        "loaded": sorted(m for m in sys.modules if m.split(".")[0] in event["names"]),
        "boto3": importlib.metadata.version("boto3"),
        "botocore_file": botocore.__file__,
        "path": sys.path,
        "cmdline": cmdline,
    }
"""
# A function bundling its own module named like a platform package.
OWN_YAML = {
    "app.py": "import yaml\ndef handler(event, context):\n    return yaml.OWN\n",
    "yaml.py": "OWN = 'the function yaml'\n",
}


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def subprocess_launcher() -> AsyncIterator[SubprocessLauncher]:
    launcher = SubprocessLauncher()
    yield launcher
    await launcher.close()


@pytest_asyncio.fixture(loop_scope="module", params=["zygote", "template", "exec"])
async def path_envs(
    request: pytest.FixtureRequest,
    gateway: TestGateway,
    zygote: ZygoteLauncher,
    subprocess_launcher: SubprocessLauncher,
    tmp_path: Path,
) -> AsyncIterator[tuple[str, Environments]]:
    launcher = subprocess_launcher if request.param == "template" else zygote
    holder = Environments(gateway, launcher, tmp_path)
    yield request.param, holder
    await holder.close()


def files_for(kind: str, files: dict[str, str]) -> dict[str, str]:
    """The exec'd path is taken when the function has a native-library directory."""
    return {**files, "lib/README": "native libraries"} if kind == "exec" else files


EXPECTED_CMDLINE = {
    "zygote": "klambda_runtime.zygote",  # a fork keeps its template's command line
    "template": "klambda_runtime.agent",
    "exec": "exec_main",
}


async def test_platform_packages_are_not_importable(path_envs: tuple[str, Environments]) -> None:
    kind, envs = path_envs
    spec, _ = await envs.function(files_for(kind, {"app.py": PROBE}), runtime=RUNTIME)
    result = await envs.gateway.invoke(
        spec.environment_id, json.dumps({"names": PLATFORM_PACKAGES}).encode()
    )
    assert result.function_error == "", result.payload
    body = json.loads(result.payload)
    assert EXPECTED_CMDLINE[kind] in body["cmdline"], body["cmdline"]
    assert body["platform"] == dict.fromkeys(PLATFORM_PACKAGES, False)
    assert body["loaded"] == []
    assert body["boto3"] == lambda_libs_version("boto3")
    provided = os.path.dirname(os.path.dirname(body["botocore_file"]))
    assert os.path.basename(os.path.dirname(provided)) == "lambda-provided"
    path = body["path"]
    assert path[0] == spec.code_dir and path[1] == provided
    assert not any("site-packages" in p or "__editable__" in p for p in path), path
    assert path[2:] == [p for p in path[2:] if p.startswith(sys.base_prefix)]


def lambda_libs_version(name: str) -> str:
    import importlib.metadata

    return importlib.metadata.version(name)


@pytest.mark.parametrize("module", ["grpc", "aiohttp", "yaml", "klambda_runtime"])
async def test_importing_a_platform_package_is_an_import_module_error(
    path_envs: tuple[str, Environments], module: str
) -> None:
    kind, envs = path_envs
    app = f"import {module}\ndef handler(event, context):\n    return 1\n"
    spec, _ = await envs.function(files_for(kind, {"app.py": app}), runtime=RUNTIME)
    body = error_of(await envs.gateway.invoke(spec.environment_id, b"{}"))
    assert body["errorType"] == "Runtime.ImportModuleError"
    assert body["errorMessage"] == f"Unable to import module 'app': No module named '{module}'"


async def test_own_module_named_like_a_platform_package(
    path_envs: tuple[str, Environments],
) -> None:
    kind, envs = path_envs
    spec, _ = await envs.function(files_for(kind, OWN_YAML), runtime=RUNTIME)
    result = await envs.gateway.invoke(spec.environment_id, b"{}")
    assert result.function_error == "", result.payload
    assert json.loads(result.payload) == "the function yaml"


async def test_a_layers_own_boto3_wins(envs: Environments, tmp_path: Path) -> None:
    opt = tmp_path / "opt"
    (opt / "python" / "boto3").mkdir(parents=True)
    (opt / "python" / "boto3" / "__init__.py").write_text("__version__ = 'layer'\n")
    app = "import boto3\ndef handler(event, context):\n    return boto3.__version__\n"
    spec, _ = await envs.function({"app.py": app}, opt_dir=str(opt), runtime=RUNTIME)
    result = await envs.gateway.invoke(spec.environment_id, b"{}")
    assert json.loads(result.payload) == "layer", result.payload
