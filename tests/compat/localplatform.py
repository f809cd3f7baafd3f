"""A real local platform for the compatibility suite: ``python -m klambda_gateway.local``
(exactly what ``klambda up`` runs: LocalRegistry, ZygoteLauncher, real agents and
runtimes, the Invoke API and the management subset) as a subprocess on a free port
(``--port 0``, the bound port is read from its start-up line) with a temporary state dir.

The gateway tests' ``Harness`` runs the ``Platform`` in-process without the admin /
management routes; the AWS CLI's management commands and boto3's waiters need them, so
this suite starts the real composition instead.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Self, TypeVar

import boto3
import botocore.config

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "compat"
PYTHON = sys.executable
BIN = Path(PYTHON).parent
UP_LINE = re.compile(r"klambda is up: Invoke API (http://\S+)")
DUMMY_AWS_ENV = {"AWS_ACCESS_KEY_ID": "compat", "AWS_SECRET_ACCESS_KEY": "compat",
                 "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}


def wait_for(predicate: Callable[[], T], *, timeout: float = 15.0,
             interval: float = 0.05, what: str = "condition") -> T:
    """Poll ``predicate`` until it returns something truthy (bounded in time)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        time.sleep(interval)


class LocalPlatform:
    """One ``klambda_gateway.local`` process; ``start()`` returns once it serves."""

    def __init__(self, state_dir: Path, *, manifests: Sequence[Path | str],
                 settings: dict[str, str] | None = None) -> None:
        self.state_dir = Path(state_dir)
        self.manifests = [str(m) for m in manifests]
        self.settings = dict(settings or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self.endpoint = ""
        self.stderr_path = self.state_dir.parent / f"{self.state_dir.name}.stderr.log"

    def start(self, timeout: float = 60.0) -> LocalPlatform:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("KLAMBDA_")}
        # environments stay warm for the whole module: cold starts happen where tests expect
        env.update({"KLAMBDA_KEEP_WARM_SECONDS": "300", "KLAMBDA_SCALE_TICK_SECONDS": "0.1",
                    "KLAMBDA_STOP_GRACE_SECONDS": "2", "KLAMBDA_QUEUE_TIMEOUT_SECONDS": "10"})
        env.update({f"KLAMBDA_{k.upper()}": v for k, v in self.settings.items()})
        # the platform interpreter's directory first: a `provided` bootstrap's python3
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
        args = [PYTHON, "-m", "klambda_gateway.local", "--port", "0",
                "--state-dir", str(self.state_dir)]
        for m in self.manifests:
            args += ["-f", m]
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=err,
                                         cwd=self.state_dir, env=env)

        def up() -> str | None:
            assert self.proc is not None
            text = self.stderr_path.read_text(errors="replace")
            if self.proc.poll() is not None:
                raise AssertionError(f"the platform exited ({self.proc.returncode}):\n{text}")
            m = UP_LINE.search(text)
            return m.group(1) if m else None

        try:
            endpoint = wait_for(up, timeout=timeout, what="platform start")
        except BaseException:
            self.stop()
            raise
        assert endpoint is not None
        self.endpoint = endpoint
        return self

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- clients -----------------------------------------------------------------------

    def client(self, *, retries: dict[str, Any] | None = None, read_timeout: float = 30) -> Any:
        """A boto3 Lambda client; by default botocore's own retry configuration."""
        config = botocore.config.Config(read_timeout=read_timeout, retries=retries)
        return boto3.client("lambda", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="compat", aws_secret_access_key="compat",
                            config=config)

    def aws(self, *args: str, timeout: float = 60, cwd: Path | None = None,
            extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """``aws <args> --endpoint-url <platform>`` (AWS CLI v1 from the venv) as a subprocess."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(DUMMY_AWS_ENV)
        env.update({"AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                    "AWS_PAGER": ""})
        env.update(extra_env or {})
        return subprocess.run([str(BIN / "aws"), *args, "--endpoint-url", self.endpoint],
                              capture_output=True, text=True, timeout=timeout, env=env,
                              cwd=cwd, stdin=subprocess.DEVNULL, check=False)

    def metrics(self) -> str:
        with urllib.request.urlopen(f"{self.endpoint}/metrics", timeout=10) as resp:
            return str(resp.read().decode())

    def metric(self, name: str, **labels: str) -> float:
        """Sum of a Prometheus sample over series whose labels include ``labels``."""
        total = 0.0
        for line in self.metrics().splitlines():
            if not line.startswith(name + "{"):
                continue
            body, value = line.rsplit(" ", 1)
            if all(f'{k}="{v}"' in body for k, v in labels.items()):
                total += float(value)
        return total

    def log(self, function: str, namespace: str = "default") -> str:
        path = self.state_dir / "logs" / namespace / f"{function}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def invoke_json(self, client: Any, function: str, payload: Any, **kw: Any) -> Any:
        r = client.invoke(FunctionName=function, Payload=json.dumps(payload).encode(), **kw)
        return r, json.loads(r["Payload"].read())
