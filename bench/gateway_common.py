"""Shared helpers of the gateway benchmarks: run the platform / a hello server as
subprocesses on free ports, and small statistics."""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

NOOP_MANIFEST = """
apiVersion: klambda.io/v1alpha1
kind: Function
metadata: {name: %(name)s, namespace: default}
spec:
  runtime: python3.12
  handler: app.handler
  code:
    inline:
      app.py: |
        import time
        def handler(event, context):
            if event.get("sleep"):
                time.sleep(event["sleep"])
            return {"ok": True}
"""

HELLO_SERVER = textwrap.dedent("""
    import sys
    from aiohttp import web
    async def hello(request):
        await request.read()
        return web.json_response({"ok": True})
    app = web.Application()
    app.add_routes([web.post("/2015-03-31/functions/{name}/invocations", hello)])
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
""")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            try:
                urllib.request.urlopen(urllib.request.Request(url, method="POST", data=b"{}"),
                                       timeout=1)
                return
            except OSError:
                time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up in {timeout} s")


class Server:
    def __init__(self, args: list[str], url: str, health: str,
                 env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(args, env={**os.environ, **(env or {})},
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        self.url = url
        wait_healthy(health, self.proc)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def start_platform(functions: list[str], *, env: dict[str, str] | None = None) -> Server:
    state = Path(tempfile.mkdtemp(prefix="klambda-bench-"))
    manifest = state / "fns.yaml"
    manifest.write_text("---\n".join(NOOP_MANIFEST % {"name": n} for n in functions))
    port = free_port()
    return Server([sys.executable, "-m", "klambda_gateway.local", "--port", str(port),
                   "--state-dir", str(state / "state"), "-f", str(manifest)],
                  f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}/healthz", env=env)


def start_hello() -> Server:
    port = free_port()
    return Server([sys.executable, "-c", HELLO_SERVER, str(port)], f"http://127.0.0.1:{port}",
                  f"http://127.0.0.1:{port}/2015-03-31/functions/x/invocations")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(values_ms: list[float]) -> str:
    return (f"p50 {pct(values_ms, 0.5):7.2f} ms  p90 {pct(values_ms, 0.9):7.2f} ms  "
            f"p99 {pct(values_ms, 0.99):7.2f} ms  mean {statistics.fmean(values_ms):7.2f} ms")
