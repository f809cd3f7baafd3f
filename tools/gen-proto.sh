#!/usr/bin/env bash
# Regenerates the Python code of proto/klambda_proto/*.proto (committed; a test
# checks that it is up to date).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
"$PY" -m grpc_tools.protoc -Iproto --python_out=proto --grpc_python_out=proto --pyi_out=proto proto/klambda_proto/environment.proto
