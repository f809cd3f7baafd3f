"""The pure pieces of the built-in runtime's import isolation: the standard library's
entries of ``sys.path``, the runtime's ``sys.path``, which loaded modules are the platform's,
distribution discovery (``top_level.txt`` / ``RECORD``), and building the Lambda-provided
directory of symlinks on a real (temporary) site-packages, content-addressed and reused.
"""

from __future__ import annotations

import os
from pathlib import Path

from klambda_runtime import lambda_libs
from klambda_runtime.pyruntime import isolation


def test_stdlib_entries() -> None:
    path = [
        "",
        "/py/lib/python311.zip",
        "/py/lib/python3.11",
        "/py/lib/python3.11/lib-dynload",
        "/venv/lib/python3.11/site-packages",
        "__editable__.klambda-0.1.0.finder.__path_hook__",
        "/elsewhere/x.zip",
    ]
    assert isolation.stdlib_entries(path, stdlib_dir="/py/lib/python3.11", base_prefix="/py") == [
        "/py/lib/python311.zip",
        "/py/lib/python3.11",
        "/py/lib/python3.11/lib-dynload",
    ]
    assert isolation.runtime_sys_path(
        front=["/code", "", "/opt/python"], provided=["/p"], stdlib=["/py/lib", "/code"]
    ) == ["/code", "/opt/python", "/p", "/py/lib"]


def test_which_modules_are_the_platforms() -> None:
    names = frozenset({"json", "distutils", "os"})

    class Mod:
        def __init__(self, file: str | None) -> None:
            self.__file__ = file

    def platform(name: str, file: str | None) -> bool:
        return isolation.is_platform_module(name, Mod(file), stdlib_names=names, stdlib_dir="/s")

    assert not platform("json", "/s/json/__init__.py")
    assert not platform("json.decoder", "/s/json/decoder.py")
    assert not platform("os", None)  # built in / frozen
    assert not platform("__main__", "/anything.py")
    assert platform("grpc", "/venv/site-packages/grpc/__init__.py")
    assert platform("klambda_runtime.pyruntime", None)
    assert platform("distutils", "/venv/site-packages/setuptools/_distutils/__init__.py")


def test_top_level_names_and_distributions() -> None:
    assert lambda_libs.top_level_names("boto3\n", from_record=False) == ["boto3"]
    record = (
        "six.py,sha256=x,1\n__pycache__/six.cpython-311.pyc,,\n"
        "six-1.17.0.dist-info/RECORD,,\n../../bin/tool,,\nurllib3/__init__.py,,\n"
        "urllib3/util/x.py,,\n"
    )
    assert lambda_libs.top_level_names(record, from_record=True) == ["six", "urllib3"]
    listings = {
        "/a": [
            "boto3",
            "boto3-1.0.dist-info",
            "grpcio-1.6.dist-info",
            "python_dateutil-2.9.dist-info",
        ],
        "/b": ["boto3-2.0.dist-info", "six-1.17.0.dist-info"],
    }
    assert lambda_libs.find_distributions(listings) == [
        ("/a", "boto3-1.0.dist-info"),
        ("/a", "python_dateutil-2.9.dist-info"),
        ("/b", "six-1.17.0.dist-info"),
    ]


def test_prepare_builds_symlinks_once(tmp_path: Path) -> None:
    site = tmp_path / "venv" / "site-packages"
    (site / "botocore").mkdir(parents=True)
    (site / "botocore" / "__init__.py").write_text("")
    (site / "botocore-1.0.dist-info").mkdir()
    (site / "botocore-1.0.dist-info" / "top_level.txt").write_text("botocore\n")
    (site / "six.py").write_text("")
    (site / "six-1.17.0.dist-info").mkdir()
    (site / "six-1.17.0.dist-info" / "RECORD").write_text("six.py,,\n")
    (site / "yaml").mkdir()
    (site / "PyYAML-6.0.dist-info").mkdir()
    cache = tmp_path / "cache"
    first = lambda_libs.prepare(
        path=[str(site), "/nonexistent/site-packages"], cache_dir=str(cache)
    )
    assert first is not None and first.startswith(str(cache / "lambda-provided"))
    assert sorted(os.listdir(first)) == [
        "botocore",
        "botocore-1.0.dist-info",
        "six-1.17.0.dist-info",
        "six.py",
    ]
    assert os.readlink(os.path.join(first, "botocore")) == str(site / "botocore")
    assert lambda_libs.prepare(path=[str(site)], cache_dir=str(cache)) == first
    # A new version is a new directory (content-addressed by the dist-info names).
    (site / "botocore-1.0.dist-info").rename(site / "botocore-1.1.dist-info")
    assert lambda_libs.prepare(path=[str(site)], cache_dir=str(cache)) not in (None, first)
    assert lambda_libs.prepare(path=[str(tmp_path)], cache_dir=str(cache)) is None


ISOLATE_IN_A_CHILD = """
import json, os, sys
import grpc, yaml, klambda_runtime.agent
from klambda_runtime.pyruntime import isolation
if sys.argv[1] == "snapshot":
    isolation.snapshot()
isolation.isolate(front=[sys.argv[2]], provided=[])
def importable(name):
    try:
        __import__(name)
        return True
    except ImportError:
        return False
print(json.dumps({
    "loaded": sorted(m for m in sys.modules if m.split(".")[0] in ("grpc", "yaml", "klambda_runtime")),
    "importable": [importable(n) for n in ("grpc", "yaml", "klambda_runtime", "json", "asyncio")],
    "path0": sys.path[0],
    "hooks": len(sys.meta_path),
}))
"""


def test_isolate_with_and_without_snapshot(tmp_path: Path) -> None:
    """In a real interpreter that imported the platform: both ways forget it all."""
    import json
    import subprocess
    import sys

    seen = []
    for mode in ("snapshot", "full"):
        out = subprocess.run(
            [sys.executable, "-c", ISOLATE_IN_A_CHILD, mode, str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        seen.append(json.loads(out))
    assert seen[0] == seen[1]
    assert seen[0] == {
        "loaded": [],
        "importable": [False, False, False, True, True],
        "path0": str(tmp_path),
        "hooks": 3,  # BuiltinImporter, FrozenImporter, PathFinder
    }


def test_runtime_imports_and_exec_argv() -> None:
    import json
    from dataclasses import replace

    from klambda_runtime.runtime_env import builtin_exec_argv, runtime_imports
    from klambda_runtime.spec import EnvironmentSpec

    spec = EnvironmentSpec(
        environment_id="e",
        gateway="127.0.0.1:1",
        namespace="default",
        function_name="fn",
        version="$LATEST",
        runtime="python3.12",
        handler="app.handler",
        code_dir="/code",
        opt_dir="/opt",
    )
    imports = runtime_imports(spec, python_version=(3, 12), provided="/cache/lambda-provided/x")
    assert imports == {
        "front": ["/code", "/opt/python/lib/python3.12/site-packages", "/opt/python"],
        "provided": ["/cache/lambda-provided/x"],
    }
    no_layers = runtime_imports(replace(spec, opt_dir=""), python_version=(3, 12), provided=None)
    assert no_layers == {"front": ["/code"], "provided": []}
    argv = builtin_exec_argv("/py/python3.12", imports)
    assert argv[:2] == ["/py/python3.12", "-c"]
    assert os.path.isdir(os.path.join(argv[3], "klambda_runtime"))
    assert json.loads(argv[4]) == imports
