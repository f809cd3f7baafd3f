"""Code and layer content as files, and the immutable ConfigMaps that carry them.

Pure: base64 and zip decoding work on bytes in memory; nothing touches the disk or network.
ConfigMap keys cannot contain ``/``, so every file gets a safe key and the volume's
``items`` map keys back to relative paths (that mapping is the :class:`Artifact`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
import stat
import zipfile
from collections.abc import Mapping
from typing import Any

from klambda_operator.errors import InvalidCode
from klambda_operator.resources.meta import owned_metadata
from klambda_operator.resources.version import Artifact, CodeFile

# etcd's request limit is 1.5 MiB; keep room for metadata and base64 growth.
MAX_CONFIGMAP_BYTES = 1_000_000
_EXECUTABLE_NAMES = {"bootstrap"}
_KEY_UNSAFE = re.compile(r"[^-._a-zA-Z0-9]")


def _clean_path(path: str, *, field: str) -> str:
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts):
        raise InvalidCode(
            f"{field}: file path {path!r} is not a relative path inside the code directory; "
            "use paths like app.py or pkg/util.py"
        )
    return "/".join(parts)


def files_from_source(source: Mapping[str, Any], *, field: str) -> dict[str, tuple[bytes, int]]:
    """Files of an inline or zipFile source: path -> (content, mode)."""
    if "inline" in source:
        inline = source["inline"] or {}
        out: dict[str, tuple[bytes, int]] = {}
        for path, text in inline.items():
            clean = _clean_path(str(path), field=f"{field}.inline")
            executable = clean.rsplit("/", 1)[-1] in _EXECUTABLE_NAMES or str(text).startswith("#!")
            mode = 0o555 if executable else 0o444
            out[clean] = (str(text).encode(), mode)
        return out
    if "zipFile" in source:
        try:
            raw = base64.b64decode(str(source["zipFile"]), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidCode(
                f"{field}.zipFile is not valid base64 ({exc}); encode the archive with "
                "`base64 -w0 code.zip`"
            ) from exc
        return _unzip(raw, field=f"{field}.zipFile")
    raise InvalidCode(f"{field}: no inline or zipFile content to store")


def _unzip(raw: bytes, *, field: str) -> dict[str, tuple[bytes, int]]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
    except zipfile.BadZipFile as exc:
        raise InvalidCode(
            f"{field} is not a zip archive ({exc}); create it with `zip -r code.zip .`"
        ) from exc
    out: dict[str, tuple[bytes, int]] = {}
    total = 0
    with archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            clean = _clean_path(info.filename, field=field)
            total += info.file_size
            if total > MAX_CONFIGMAP_BYTES:
                raise InvalidCode(
                    f"{field}: the archive unpacks to more than {MAX_CONFIGMAP_BYTES} bytes, "
                    "too big for a ConfigMap; publish it at a URL and use url + sha256, or "
                    "build an image"
                )
            unix_mode = (info.external_attr >> 16) & 0o777
            executable = bool(unix_mode & stat.S_IXUSR) or clean in _EXECUTABLE_NAMES
            out[clean] = (archive.read(info), 0o555 if executable else 0o444)
    return out


def file_key(index: int, path: str) -> str:
    """A ConfigMap key for a file: unique by index, readable by name."""
    tail = _KEY_UNSAFE.sub("_", path.replace("/", "__"))[-200:]
    return f"f{index:04d}.{tail}"


def content_digest(files: Mapping[str, tuple[bytes, int]]) -> str:
    h = hashlib.sha256()
    for path in sorted(files):
        data, mode = files[path]
        h.update(f"{path}\0{mode}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def build_code_configmap(
    *,
    namespace: str,
    name_prefix: str,
    files: Mapping[str, tuple[bytes, int]],
    owner: Mapping[str, Any],
    labels: Mapping[str, str],
) -> tuple[dict[str, Any], Artifact]:
    """An immutable, content-addressed ConfigMap holding ``files`` and the Artifact that
    projects it. Same files, same name: re-applying is a no-op."""
    digest = content_digest(files)
    name = f"{name_prefix}-{digest[:10]}"
    data: dict[str, str] = {}
    binary: dict[str, str] = {}
    items: list[CodeFile] = []
    size = 0
    for index, path in enumerate(sorted(files)):
        content, mode = files[path]
        key = file_key(index, path)
        size += len(content)
        try:
            data[key] = content.decode("utf-8")
        except UnicodeDecodeError:
            binary[key] = base64.b64encode(content).decode()
        items.append(CodeFile(key=key, path=path, mode=mode))
    if size > MAX_CONFIGMAP_BYTES:
        raise InvalidCode(
            f"the code is {size} bytes, too big for a ConfigMap (limit {MAX_CONFIGMAP_BYTES}); "
            "publish it at a URL and use url + sha256, or build an image"
        )
    configmap: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": owned_metadata(
            name=name,
            namespace=namespace,
            owner=owner,
            labels={**labels, "klambda.io/content-digest": digest[:63]},
        ),
        "immutable": True,
    }
    if data:
        configmap["data"] = data
    if binary:
        configmap["binaryData"] = binary
    return configmap, Artifact(config_map=name, files=tuple(items))


def merge_layer_items(layers: list[Artifact]) -> list[tuple[str, CodeFile]]:
    """The /opt projection of ConfigMap layers: (configmap, file) with later layers winning
    on the same path (a projected volume rejects duplicate paths)."""
    winner: dict[str, tuple[str, CodeFile]] = {}
    for artifact in layers:
        for f in artifact.files:
            winner[f.path] = (artifact.config_map, f)
    return [winner[path] for path in sorted(winner)]
