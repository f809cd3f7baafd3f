"""Repository-wide guarantees: the layer contracts hold (import-linter) and the
committed gRPC code is what the .proto generates."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_layers_hold() -> None:
    """The runtime imports nothing of Kubernetes; the gateway never imports the operator;
    the resource model is pure (contracts in pyproject.toml)."""
    lint = Path(sys.executable).parent / "lint-imports"
    exe = str(lint) if lint.exists() else shutil.which("lint-imports")
    assert exe, "import-linter is not installed: pip install -e '.[dev]'"
    run = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr


def test_generated_proto_code_is_current(tmp_path: Path) -> None:
    """tools/gen-proto.sh output matches the committed *_pb2*.py files."""
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{ROOT / 'proto'}",
         f"--python_out={out}", f"--grpc_python_out={out}", f"--pyi_out={out}",
         str(ROOT / "proto/klambda_proto/environment.proto")],
        check=True, timeout=60,
    )
    for name in ("environment_pb2.py", "environment_pb2_grpc.py", "environment_pb2.pyi"):
        generated = (out / "klambda_proto" / name).read_text()
        committed = (ROOT / "proto/klambda_proto" / name).read_text()
        assert generated == committed, f"{name} is stale: run tools/gen-proto.sh"
