"""What a function can import: Lambda's search path, nothing of the platform's.

A Lambda Python function can import its own code (the task root), its layers, the
standard library and the libraries Lambda's runtime ships (boto3, botocore and their
dependencies) — nothing else. klambda's runtime processes are forks of a template that
imported the platform (grpc, psutil, the agent...) or interpreters started from klambda's
venv, so before the handler is loaded the runtime process:

* rebuilds ``sys.path`` as: task root, layer paths, the "Lambda-provided" directory (see
  :mod:`klambda_runtime.lambda_libs`), the standard library (zip, ``lib``, ``lib-dynload``);
* drops every import hook that is not the interpreter's own (the venv's editable finder,
  setuptools' distutils hack...) and the path importer cache;
* forgets (``sys.modules``) every module that is not the standard library's — including
  klambda's own, so ``import klambda_runtime`` fails in a function; the runtime keeps
  working on the module objects it already holds (it is stdlib-only and imports nothing
  of its own lazily).

Standard library only: it runs in the runtime process, under any Python 3.11+.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable

# The interpreter's own import machinery (everything else on the hooks is a package's).
_CORE_IMPORT_MODULES = frozenset({"_frozen_importlib", "_frozen_importlib_external", "zipimport"})


def stdlib_entries(path: Iterable[str], *, stdlib_dir: str, base_prefix: str) -> list[str]:
    """The standard library's entries of an interpreter's ``sys.path``, in their order."""
    dynload = os.path.join(stdlib_dir, "lib-dynload")
    keep = []
    for entry in path:
        if entry in (stdlib_dir, dynload):
            keep.append(entry)
        elif entry.endswith(".zip") and entry.startswith(base_prefix.rstrip(os.sep) + os.sep):
            keep.append(entry)  # lib/python3XY.zip (usually absent, always listed)
    return keep


def runtime_sys_path(
    *, front: Iterable[str], provided: Iterable[str], stdlib: Iterable[str]
) -> list[str]:
    """Task root + layers (``front``), the Lambda-provided libraries, the standard library."""
    out: list[str] = []
    for entry in (*front, *provided, *stdlib):
        if entry and entry not in out:
            out.append(entry)
    return out


def in_stdlib(path: str, *, stdlib_dir: str) -> bool:
    """Whether a file or directory is the standard library's (not a site directory in it)."""
    if path != stdlib_dir and not path.startswith(stdlib_dir + os.sep):
        return False
    return "site-packages" not in path and "dist-packages" not in path


def is_platform_module(
    name: str, module: object, *, stdlib_names: frozenset[str], stdlib_dir: str
) -> bool:
    """Whether a loaded module must be forgotten: anything not the standard library's."""
    if name == "__main__":
        return False
    if name.partition(".")[0] not in stdlib_names:
        return True
    filename = getattr(module, "__file__", None)
    # A stdlib name served from elsewhere (e.g. setuptools' ``distutils``) is not stdlib.
    return isinstance(filename, str) and not in_stdlib(filename, stdlib_dir=stdlib_dir)


def _is_core_hook(hook: object) -> bool:
    return getattr(hook, "__module__", None) in _CORE_IMPORT_MODULES


class _Snapshot:
    """A template's import state classified once, before it forks (see :func:`snapshot`)."""

    def __init__(self) -> None:
        stdlib_dir = os.path.dirname(os.__file__)
        names = frozenset(sys.stdlib_module_names)
        self.module_count = len(sys.modules)
        self.drop = tuple(
            name
            for name, module in dict(sys.modules).items()
            if is_platform_module(name, module, stdlib_names=names, stdlib_dir=stdlib_dir)
        )
        self.stdlib = tuple(
            stdlib_entries(sys.path, stdlib_dir=stdlib_dir, base_prefix=sys.base_prefix)
        )
        # Finders cached for directories that stay importable (the stdlib's) are kept.
        self.stale_finders = tuple(
            key
            for key in sys.path_importer_cache
            if key not in self.stdlib and not in_stdlib(key, stdlib_dir=stdlib_dir)
        )
        self.meta_path = tuple(hook for hook in sys.meta_path if _is_core_hook(hook))
        self.path_hooks = tuple(hook for hook in sys.path_hooks if _is_core_hook(hook))


_snapshot: _Snapshot | None = None
# Forgotten modules stay referenced: freeing them in a fork would only copy the template's
# pages (reference counts, deallocation) for nothing.
_forgotten: list[object] = []


def snapshot() -> None:
    """Classify this process's modules and paths now, in a template about to fork runtimes
    (zygote, per-environment template): a runtime then only pops the known names instead
    of inspecting every module (which touches — and copies — a page per module)."""
    global _snapshot
    _snapshot = _Snapshot()


def isolate(*, front: Iterable[str], provided: Iterable[str]) -> None:
    """Make this process's import system what a Lambda function finds (see module doc)."""
    snap = _snapshot
    if snap is None or snap.module_count != len(sys.modules):
        snap = _Snapshot()  # exec'd runtime, or modules imported since the snapshot
    sys.path[:] = runtime_sys_path(front=front, provided=provided, stdlib=snap.stdlib)
    sys.meta_path[:] = snap.meta_path
    sys.path_hooks[:] = snap.path_hooks
    # The stdlib's cached finders stay valid; the task root and layers get fresh ones (no
    # importlib.invalidate_caches() needed: nothing cached refers to them).
    forget_finder = sys.path_importer_cache.pop
    _forgotten.extend(forget_finder(key, None) for key in snap.stale_finders)
    forget_module = sys.modules.pop
    _forgotten.extend(forget_module(name, None) for name in snap.drop)


def exec_main(config_json: str) -> int:
    """Entry point of an exec'd runtime (``python -c …``, see ``supervisor``): isolate, run.

    ``config_json`` is ``{"front": [...], "provided": [...]}`` from the agent.
    """
    import json

    from klambda_runtime.pyruntime import bootstrap

    config = json.loads(config_json)
    env = os.environ
    isolate(front=config.get("front", []), provided=config.get("provided", []))
    sys.argv = ["bootstrap"]
    return bootstrap.run(env["AWS_LAMBDA_RUNTIME_API"], env.get("_HANDLER", ""))
