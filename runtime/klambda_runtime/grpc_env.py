"""gRPC core tuning shared by the gateway and the agents (call before ``import grpc``).

gRPC core reads ``GRPC_EXPERIMENTS`` once, when the ``grpc`` module is imported. With the
EventEngine client and listener experiments on (grpcio's default), every message of a
grpc.aio stream crosses one more thread than with the classic poller: measured on a
stream ping-pong between two processes (bench/perf.md) the classic path costs ~25 % less
CPU per message on each side and ~25 % less round-trip latency. The agent <-> gateway
stream is on the warm path of every invocation, so both ends use it.

An explicit ``GRPC_EXPERIMENTS`` in the environment (even an empty one) wins. Child
processes inherit the variable, which is how forked agents get it: the zygote is started
with the gateway's environment and imports grpc at once.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

EXPERIMENTS = "-event_engine_client,-event_engine_listener"


def tune(environ: MutableMapping[str, str] | None = None) -> None:
    """Set the default ``GRPC_EXPERIMENTS`` unless the operator chose their own."""
    env = os.environ if environ is None else environ
    env.setdefault("GRPC_EXPERIMENTS", EXPERIMENTS)
