"""The AWS CLI (`aws lambda invoke`, a client nobody here wrote) against a running platform:
stdout fields for a result, a function error and Tail logs; a service error's message and
exit status."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

from .harness import Harness

AWS = Path(sys.executable).with_name("aws")


def aws(h: Harness, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_MAX_ATTEMPTS": "1"}
    return subprocess.run([str(AWS), "lambda", "invoke", "--endpoint-url", h.endpoint, *args],
                          env=env, capture_output=True, text=True, timeout=60, check=False)


def test_aws_cli_invoke(platform: Harness, tmp_path: Path) -> None:
    platform.call(lambda: platform.registry.add_function(
        "cli", "def handler(event, context):\n"
               "    if event.get('fail'):\n"
               "        raise KeyError('nope')\n"
               "    return {'got': event}\n"))
    out = tmp_path / "out.json"
    ok = aws(platform, "--function-name", "cli", "--payload", '{"a": 1}', "--log-type", "Tail",
             str(out))
    assert ok.returncode == 0, ok.stderr
    meta = json.loads(ok.stdout)
    assert meta["StatusCode"] == 200 and meta["ExecutedVersion"] == "$LATEST"
    assert "REPORT RequestId" in base64.b64decode(meta["LogResult"]).decode()
    assert json.loads(out.read_text()) == {"got": {"a": 1}}

    failed = aws(platform, "--function-name", "cli", "--payload", '{"fail": 1}', str(out))
    assert failed.returncode == 0 and json.loads(failed.stdout)["FunctionError"] == "Unhandled"
    assert json.loads(out.read_text())["errorType"] == "KeyError"

    missing = aws(platform, "--function-name", "ghost", str(out))
    assert missing.returncode == 255
    assert "An error occurred (ResourceNotFoundException) when calling the Invoke operation" \
        in missing.stderr
