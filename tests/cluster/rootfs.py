"""The container root of a pod on the test node agent: the emulated "image" and the volumes.

There is no image: a container sees the host's file system (an rbind of /, chrooted into) with
its volumes bind-mounted at their mountPath, in a private mount namespace. The directories the
"image" really consists of -- the project's interpreter (venv and base Python), the source
directories of the editable install, the repository, and the node agent's state dir (default
workingDir) -- are re-bound at their own path on top of any volume mounted over one of their
parents, so an emptyDir at /tmp does not hide a checkout (and its .venv) under /tmp.
Test infrastructure only; see tests/README.md.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shlex
import sys
from dataclasses import dataclass
from typing import Any

from .podspec import HostEnv, PodConfigError, VolumeSet

JSON = dict[str, Any]
PROJECT_PACKAGE_PREFIX = "klambda_"
_THIS_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def resolve(path: str) -> str:
    """An absolute container path with symlinks resolved as the chroot will see them (e.g.
    /var/run -> /run): an absolute symlink must not escape the root."""
    return os.path.realpath("/" + path.lstrip("/"))


def is_within(path: str, parent: str) -> bool:
    """`path` equals `parent` or lies below it (both absolute and normalised)."""
    return parent == "/" or path == parent or path.startswith(parent.rstrip("/") + "/")


def _project_package_dirs() -> list[str]:
    """Directories of the importable klambda_* packages (editable: their source dirs)."""
    dirs: list[str] = []
    for name in sorted(importlib.metadata.packages_distributions()):
        if not name.startswith(PROJECT_PACKAGE_PREFIX):
            continue
        try:
            spec = importlib.util.find_spec(name)  # locates only; nothing is imported
        except (ImportError, ValueError):
            continue
        if spec is None:
            continue
        if spec.submodule_search_locations:
            dirs.extend(spec.submodule_search_locations)
        elif spec.origin:
            dirs.append(os.path.dirname(spec.origin))
    return dirs


def _editable_roots() -> list[str]:
    """Project directories of editable installs that provide klambda_* packages."""
    roots: list[str] = []
    owners = importlib.metadata.packages_distributions()
    dists = {d for n, ds in owners.items() if n.startswith(PROJECT_PACKAGE_PREFIX) for d in ds}
    for dist in sorted(dists):
        try:
            raw = importlib.metadata.distribution(dist).read_text("direct_url.json")
            info = json.loads(raw or "{}")
        except (importlib.metadata.PackageNotFoundError, ValueError):
            continue
        url = str(info.get("url", ""))
        if info.get("dir_info", {}).get("editable") and url.startswith("file://"):
            roots.append(url[len("file://") :])
    return roots


def image_dirs(*, python: str, state_dir: str) -> tuple[str, ...]:
    """The directories the emulated image consists of, derived from the running interpreter.

    sys.prefix / sys.base_prefix (and exec prefixes), the venv of `python` (the interpreter
    containers run) and the prefix its symlink resolves to, the klambda_* package dirs (the
    editable install's sources), the repository roots (editable install + this checkout), and
    the node agent's `state_dir`. Existing directories only, symlinks resolved, sorted.
    """
    candidates = [
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        sys.base_exec_prefix,
        os.path.dirname(os.path.dirname(os.path.abspath(python))),
        os.path.dirname(os.path.dirname(os.path.realpath(python))),
        *_project_package_dirs(),
        *_editable_roots(),
        _THIS_REPO,
        state_dir,
    ]
    return tuple(sorted({resolve(d) for d in candidates if d and os.path.isdir(d)}))


def image_rebinds(volume_paths: list[str], images: tuple[str, ...]) -> list[str]:
    """Image dirs that must be re-bound on top of the volumes (all paths resolved).

    An image dir is hidden when a volume is mounted over one of its parents; it is re-bound
    unless a volume is mounted exactly at it (the pod asked for that) or another re-bound
    image dir between that volume and it already brings it back.
    """
    out: list[str] = []
    vols = set(volume_paths)
    for d in images:
        if d in vols:
            continue
        covering = [m for m in vols if m != d and is_within(d, m)]
        if not covering:
            continue
        deepest = max(covering, key=len)
        if any(
            e != d and e != deepest and is_within(e, deepest) and is_within(d, e) for e in images
        ):
            continue
        out.append(d)
    return out


@dataclass(frozen=True)
class _Mount:
    path: str  # resolved path inside the root
    source: str  # host path
    image: bool  # an image dir re-bound at its own path (else a volume)
    read_only: bool = False

    def key(self) -> tuple[int, int, str]:
        # outer first; at the same path an image dir goes before a volume (the volume wins)
        return (self.path.rstrip("/").count("/"), 0 if self.image else 1, self.path)


def mount_wrapper(
    *,
    container: JSON,
    volumes: VolumeSet,
    argv: list[str],
    workdir: str,
    rootfs: str,
    host: HostEnv,
) -> list[str]:
    """argv that runs `argv` with the volumes at their mountPath, like a container would see.

    In a private mount namespace (unshare) the host root is rbind-mounted at `rootfs`, the
    volumes are bind-mounted onto `rootfs/<mountPath>` (outer first), image dirs hidden by a
    volume are re-bound at their own path on top (their mountpoint is created inside the
    volume), read-only volumes are remounted read-only, and the command is chrooted there.
    Volume sources are host paths outside the root, so a volume at /tmp never hides the sources
    of other volumes. Nothing changes outside the namespace except empty mountpoint dirs/files
    created where a mountPath did not exist (inside a volume's directory for re-bound image dirs).
    """
    specs = container.get("volumeMounts", [])
    if not specs:
        return argv
    if not host.can_mount:
        raise PodConfigError(
            "volumeMounts need a private mount namespace: run the test node agent as root "
            "with unshare(1) available"
        )
    mounts: list[_Mount] = []
    for m in specs:
        src = volumes.path(m["name"])
        if m.get("subPath"):
            src = os.path.join(src, m["subPath"])
        mounts.append(
            _Mount(resolve(m["mountPath"]), src, image=False, read_only=bool(m.get("readOnly")))
        )
    rebinds = image_rebinds([m.path for m in mounts], host.image_dirs)
    mounts.extend(_Mount(d, d, image=True) for d in rebinds)
    mounts.sort(key=_Mount.key)
    q = shlex.quote
    root = rootfs.rstrip("/")
    lines = [f"mkdir -p {q(root)}", f"mount --rbind / {q(root)}"]
    for m in mounts:  # nested mountpoints are created inside the volumes mounted before
        mp = root + m.path
        if m.image or os.path.isdir(m.source):
            lines.append(f"mkdir -p {q(mp)}")
        else:
            lines.append(f"mkdir -p {q(os.path.dirname(mp))}; [ -e {q(mp)} ] || : > {q(mp)}")
        # The state dir holds this very root: bind it without its submounts.
        how = "--rbind" if m.image and not is_within(rootfs, m.source) else "--bind"
        lines.append(f"mount {how} {q(m.source)} {q(mp)}")
    for m in reversed(mounts):  # read-only only after every nested mountpoint exists
        if m.read_only:
            lines.append(f"mount -o remount,bind,ro {q(root + m.path)}")
    lines.append(f"mkdir -p {q(root + resolve(workdir))}")
    lines.append(f'exec chroot {q(root)} /bin/sh -c \'cd "$0" && exec "$@"\' {q(workdir)} "$@"')
    return [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--",
        "/bin/sh",
        "-ec",
        "\n".join(lines),
        "sh",
        *argv,
    ]
