"""A runtime server: a warm template of the built-in runtime on *another* interpreter.

A ``python3.12`` function's runtime must run on Python 3.12, which the zygote (running on
the platform's interpreter, e.g. 3.11) cannot fork. So the zygote starts, once per such
interpreter (lazily, on the first request; see :mod:`klambda_runtime.runtime_servers`),

    python3.12 -s -c <BOOT> <klambda_runtime's parent dir> <fd>

which imports only the standard library and the stdlib-only built-in runtime (``sys.path``
is the runtime's source directory plus the interpreter's standard library: no
site-packages, so klambda need not be installed there), freezes its objects, classifies
its imports for :func:`klambda_runtime.pyruntime.isolation.isolate`, and then serves the
zygote's forwarded fork requests exactly as the zygote serves its own
(:func:`klambda_runtime.templates.runtime_child_main`: joins the agent's process group,
log pipe on stdout/stderr, Lambda's environment, isolated imports, bootstrap).

Everything imported here must be standard library or klambda_runtime modules that are
(``forkserver``, ``templates``, ``pyruntime``): it runs on an interpreter that has no
third-party packages.
"""

from __future__ import annotations

import gc
import os
import socket
import sys

# The interpreter's argv: ``-s`` (no user site), ``-c BOOT``, then the runtime's parent
# directory and the socket's fd. BOOT keeps only the standard library on the path.
BOOT = (
    "import sys; sys.path[:] = [sys.argv[1]] + [p for p in sys.path if p and "
    "'site-packages' not in p and 'dist-packages' not in p]; "
    "from klambda_runtime.runtime_server import main; sys.exit(main(int(sys.argv[2])))"
)


def argv(python: str, *, package_parent: str, fd: int) -> list[str]:
    return [python, "-s", "-c", BOOT, package_parent, str(fd)]


def preload() -> None:
    """What the zygote preloads of the standard library, plus the built-in runtime."""
    import asyncio  # noqa: F401
    import datetime  # noqa: F401
    import decimal  # noqa: F401
    import hashlib  # noqa: F401
    import importlib.util  # noqa: F401
    import json  # noqa: F401
    import logging  # noqa: F401
    import subprocess  # noqa: F401
    import traceback  # noqa: F401
    import urllib.parse  # noqa: F401

    from klambda_runtime import templates  # noqa: F401
    from klambda_runtime.pyruntime import bootstrap, client, context, faults, logs  # noqa: F401


def main(fd: int) -> int:
    sock = socket.socket(fileno=fd)
    from klambda_runtime.pyruntime import isolation

    stdlib_dir = os.path.dirname(os.__file__)
    sys.path[:] = [
        sys.path[0],
        *isolation.stdlib_entries(sys.path, stdlib_dir=stdlib_dir, base_prefix=sys.base_prefix),
    ]
    preload()
    from klambda_runtime import forkserver
    from klambda_runtime.templates import runtime_child_main

    os.chdir("/")
    gc.collect()
    gc.freeze()
    forkserver.become_subreaper()
    forkserver.set_process_name(f"klambda-rt{sys.version_info[0]}.{sys.version_info[1]}")
    isolation.snapshot()
    # Runtimes outlive the server (as the zygote's outlive the zygote): their agents learn
    # their ends through pidfds then.
    forkserver.serve(
        sock, {"runtime": runtime_child_main}, default_kind="runtime", kill_children_on_eof=False
    )
    return 0
