"""The "Lambda-provided" libraries: what Lambda's Python runtimes ship besides the stdlib.

Lambda's managed Python runtimes let a function import boto3 and botocore (and their
dependencies) without bundling them; nothing else outside the standard library. klambda's
equivalent of ``/var/runtime`` is a directory holding *symlinks* to exactly those
distributions (their top-level packages/modules and their ``.dist-info``, so
``importlib.metadata.version("boto3")`` works) in the platform's own site-packages; no
``.pth`` file, no copy. It is built once per platform process (zygote, or pod agent),
content-addressed (a hash of the site directories and the ``.dist-info`` names, which
carry the versions) under ``<cache>/lambda-provided/<hash>``, and reused by every runtime
after that (a stat). The runtime process puts it on ``sys.path`` after the task root and
the layers (see :mod:`klambda_runtime.pyruntime.isolation`), so a function's own boto3
wins, as in Lambda.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterable, Mapping

_log = logging.getLogger("klambda.agent")

# boto3/botocore and their dependencies, as Lambda's Python runtimes include them.
PROVIDED_DISTRIBUTIONS = (
    "boto3",
    "botocore",
    "jmespath",
    "python-dateutil",
    "s3transfer",
    "six",
    "urllib3",
)
_DIST_INFO = re.compile(r"^(?P<name>[^-]+)-[^-]+\.dist-info$")


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def site_dirs(path: Iterable[str]) -> list[str]:
    """The site-packages directories of an interpreter's ``sys.path``."""
    return [p for p in path if os.path.basename(p) in ("site-packages", "dist-packages")]


def find_distributions(
    listings: Mapping[str, list[str]], wanted: Iterable[str] = PROVIDED_DISTRIBUTIONS
) -> list[tuple[str, str]]:
    """``(site_dir, dist_info)`` of each wanted distribution; the first site dir wins.

    ``listings`` maps each site directory (in ``sys.path`` order) to its entries.
    """
    todo = {normalise(n) for n in wanted}
    found: list[tuple[str, str]] = []
    for site, entries in listings.items():
        for entry in sorted(entries):
            match = _DIST_INFO.match(entry)
            if match and normalise(match["name"]) in todo:
                todo.discard(normalise(match["name"]))
                found.append((site, entry))
    return found


def top_level_names(record_or_top_level: str, *, from_record: bool) -> list[str]:
    """Top-level importable names of a distribution from ``top_level.txt`` or ``RECORD``."""
    names: list[str] = []
    for line in record_or_top_level.splitlines():
        if from_record:
            path = line.split(",", 1)[0]
            first = path.split("/", 1)[0]
            if not first or first.startswith("..") or first.endswith((".dist-info", ".pth")):
                continue
            if first == "__pycache__" or "/" not in path and not first.endswith(".py"):
                continue
            name = first.removesuffix(".py")
        else:
            name = line.strip()
        if name and name not in names:
            names.append(name)
    return names


def provided_key(found: Iterable[tuple[str, str]]) -> str:
    text = "\n".join(f"{site}/{dist}" for site, dist in sorted(found))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _names_of(site: str, dist_info: str) -> list[str]:
    base = os.path.join(site, dist_info)
    for filename, from_record in (("top_level.txt", False), ("RECORD", True)):
        try:
            with open(os.path.join(base, filename), encoding="utf-8") as f:
                return top_level_names(f.read(), from_record=from_record)
        except OSError:
            continue
    return []


def _build(target: str, found: list[tuple[str, str]]) -> None:
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".build-", dir=parent)
    try:
        for site, dist_info in found:
            os.symlink(os.path.join(site, dist_info), os.path.join(tmp, dist_info))
            for name in _names_of(site, dist_info):
                for candidate in (name, name + ".py"):
                    source = os.path.join(site, candidate)
                    if os.path.exists(source) and not os.path.lexists(os.path.join(tmp, candidate)):
                        os.symlink(source, os.path.join(tmp, candidate))
        try:
            os.rename(tmp, target)
        except OSError:
            if not os.path.isdir(target):  # not a concurrent builder's: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def prepare(*, path: Iterable[str], cache_dir: str) -> str | None:
    """The Lambda-provided directory for the interpreter whose ``sys.path`` is ``path``
    (built if missing); None when none of the distributions is installed."""
    listings: dict[str, list[str]] = {}
    for site in site_dirs(path):
        try:
            listings[site] = os.listdir(site)
        except OSError:
            continue
    found = find_distributions(listings)
    if not found:
        return None
    target = os.path.join(cache_dir, "lambda-provided", provided_key(found))
    if not os.path.isdir(target):
        _build(target, found)
    return target


_prepared: dict[str, str | None] = {}


def ensure(cache_dir: str) -> str | None:
    """:func:`prepare` for this interpreter, once per process (forks inherit the answer).

    Failures are logged and mean "no provided libraries" (boto3 then fails to import
    in functions, with Lambda's error), never a failed environment.
    """
    if cache_dir not in _prepared:
        try:
            _prepared[cache_dir] = prepare(path=sys.path, cache_dir=cache_dir)
        except OSError as exc:
            _log.warning(
                "cannot prepare the Lambda-provided libraries (boto3...) under %s: %s; "
                "functions will not find boto3 unless they bundle it. Set "
                "KLAMBDA_AGENT_CACHE_DIR to a writable directory.",
                cache_dir,
                exc,
            )
            _prepared[cache_dir] = None
        if _prepared[cache_dir] is None:
            _log.debug("no Lambda-provided libraries found on %s", sys.path)
    return _prepared[cache_dir]


def default_cache_dir(env: Mapping[str, str]) -> str:
    """``$KLAMBDA_AGENT_CACHE_DIR``, else ``$XDG_CACHE_HOME/klambda``, else
    ``~/.cache/klambda``, else ``<tmp>/klambda-cache-<uid>`` when home is not writable."""
    explicit = env.get("KLAMBDA_AGENT_CACHE_DIR")
    if explicit:
        return explicit
    xdg = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    candidate = os.path.join(xdg, "klambda")
    try:
        os.makedirs(candidate, exist_ok=True)
        if os.access(candidate, os.W_OK):
            return candidate
    except OSError:
        pass
    return os.path.join(tempfile.gettempdir(), f"klambda-cache-{os.getuid()}")
