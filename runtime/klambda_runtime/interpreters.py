"""Which interpreter runs a built-in Python runtime (``python3.11``, ``python3.12``...).

The built-in runtime is stdlib-only, so any CPython 3.11+ can run it: a ``python3.12``
function runs on a Python 3.12 interpreter when the machine has one, so that what it sees
(``sys.version_info``, the stdlib, ``ensure_ascii=False``...) is 3.12's. The choice, per
runtime ``pythonX.Y``:

1. the platform's own interpreter when it *is* X.Y (the runtime is then forked from the
   zygote / template: the fast path);
2. ``$KLAMBDA_PYTHONX_Y`` (e.g. ``KLAMBDA_PYTHON3_12=/opt/py312/bin/python3.12``);
3. ``pythonX.Y`` on ``PATH`` (not a pyenv/asdf shim: those choose by their own config);
4. pyenv: ``$PYENV_ROOT`` (default ``~/.pyenv``) ``/versions/X.Y.*/bin/pythonX.Y``, the
   highest patch release;
5. none found: the platform's interpreter, and the agent writes a one-time warning to the
   environment's log.

Under a zygote with runtime servers (:mod:`klambda_runtime.runtime_servers`), an agent's
choice of another found interpreter is marked ``platform=True`` ("forked from a template"):
its runtimes are forked by a warm runtime server on that interpreter, which the zygote
forwards the agent's fork requests to. Elsewhere (no zygote: pods, SubprocessLauncher) an
interpreter other than the platform's is exec'd for every runtime process (like the
native-library path): it cannot be forked from a template running another Python.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from klambda_runtime.settings import AgentSettings

_RUNTIME = re.compile(r"^python(?P<major>\d+)\.(?P<minor>\d+)$")


@dataclass(frozen=True)
class Interpreter:
    path: str
    version: tuple[int, int]
    # Forked from a template: the interpreter klambda itself runs on, or (choose_interpreter
    # under a zygote with runtime servers) one the zygote has a runtime server for.
    platform: bool
    found: bool = True  # False: the runtime's version was not found; this is a stand-in


def runtime_version(runtime: str) -> tuple[int, int] | None:
    """``python3.12`` -> ``(3, 12)``; None for anything else."""
    match = _RUNTIME.match(runtime)
    return (int(match["major"]), int(match["minor"])) if match else None


def setting_name(version: tuple[int, int]) -> str:
    return f"KLAMBDA_PYTHON{version[0]}_{version[1]}"


def _patch_key(name: str) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else -1 for p in name.split("."))


def pyenv_candidates(root: str, version: tuple[int, int]) -> list[str]:
    """``<root>/versions/X.Y.*/bin/pythonX.Y``, highest patch release first."""
    prefix = f"{version[0]}.{version[1]}."
    try:
        names = [n for n in os.listdir(os.path.join(root, "versions")) if n.startswith(prefix)]
    except OSError:
        return []
    names.sort(key=_patch_key, reverse=True)
    exe = f"python{version[0]}.{version[1]}"
    return [os.path.join(root, "versions", n, "bin", exe) for n in names]


def _executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def choose(
    runtime: str,
    *,
    env: Mapping[str, str],
    platform_python: str,
    platform_version: tuple[int, int],
    which: Callable[[str], str | None] = shutil.which,
) -> Interpreter:
    """The interpreter for a built-in Python runtime (see the module doc for the order)."""
    platform = Interpreter(platform_python, platform_version, platform=True)
    version = runtime_version(runtime)
    if version is None or version == platform_version:
        return platform
    explicit = env.get(setting_name(version))
    if explicit:
        if not _executable(explicit):
            raise ValueError(
                f"{setting_name(version)}={explicit!r} is not an executable file; point it at "
                f"a python{version[0]}.{version[1]} interpreter or unset it"
            )
        return Interpreter(explicit, version, platform=False)
    exe = f"python{version[0]}.{version[1]}"
    on_path = which(exe)
    # pyenv/asdf shims pick a version from their own configuration, not from the name
    # (pyenv's python3.12 shim fails unless 3.12 is "global"): look behind them instead.
    if on_path and os.path.basename(os.path.dirname(on_path)) != "shims":
        return Interpreter(on_path, version, platform=False)
    root = env.get("PYENV_ROOT") or os.path.join(
        env.get("HOME") or os.path.expanduser("~"), ".pyenv"
    )
    for candidate in pyenv_candidates(root, version):
        if _executable(candidate):
            return Interpreter(candidate, version, platform=False)
    return Interpreter(platform_python, platform_version, platform=True, found=False)


_chosen: dict[tuple[str, str], Interpreter] = {}
# Set in the zygote when it routes other interpreters' runtimes to runtime servers; its
# agents (forks) inherit it.
_runtime_servers = False


def enable_runtime_servers(enabled: bool = True) -> None:
    """This process (a zygote) forwards runtimes of other interpreters to runtime servers."""
    global _runtime_servers
    _runtime_servers = enabled


def for_runtime(runtime: str, *, platform_python: str) -> Interpreter:
    """:func:`choose` from this process's environment, once per process (forks inherit)."""
    key = (runtime, platform_python)
    if key not in _chosen:
        _chosen[key] = choose(
            runtime,
            env=os.environ,
            platform_python=platform_python,
            platform_version=(sys.version_info[0], sys.version_info[1]),
        )
    return _chosen[key]


def not_found_warning(runtime: str, chosen: Interpreter) -> str:
    version = runtime_version(runtime) or chosen.version
    return (
        f"klambda-agent: WARNING no {runtime} interpreter found (set "
        f"{setting_name(version)}=/path/to/python{version[0]}.{version[1]}, or put "
        f"python{version[0]}.{version[1]} on PATH or in pyenv); running this {runtime} "
        f"function on Python {chosen.version[0]}.{chosen.version[1]}\n"
    )


def choose_interpreter(runtime: str, settings: AgentSettings) -> tuple[Interpreter, str]:
    """The agent's choice for its environment, and the one-time log line to write ("" when
    none): a missing interpreter or a bad ``KLAMBDA_PYTHONX_Y`` falls back to the platform's."""
    platform = Interpreter(settings.python, (sys.version_info[0], sys.version_info[1]), True)
    if not runtime.startswith("python"):
        return platform, ""
    try:
        chosen = for_runtime(runtime, platform_python=settings.python)
    except ValueError as exc:
        return platform, f"klambda-agent: WARNING {exc}; running on the platform's Python\n"
    if not chosen.found:
        return chosen, not_found_warning(runtime, chosen)
    if not chosen.platform and _runtime_servers:
        return Interpreter(chosen.path, chosen.version, platform=True), ""
    return chosen, ""
