"""Materialising code and layers as content-addressed directories on the local disk.

Every code source becomes a zip archive first (inline files are zipped deterministically),
so each artifact has Lambda's ``CodeSha256`` (base64 SHA-256 of the zip) and lives at
``<root>/<hex sha256>/`` (extracted). A function version's ``/opt`` is the merge of its
layers in order (later layers override files of earlier ones), stored at
``<root>/opt/<hex sha256 of the ordered layer digests>/``. Directories are written under a
temporary name and renamed into place, so a crash never leaves a half-written artifact.
:meth:`ArtifactStore.collect_garbage` removes what no version references any more.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import shutil
import stat
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from klambda_model import Code, LayerContent

MAX_UNZIPPED_BYTES = 262_144_000  # Lambda's limit for code + layers, unzipped
MAX_DOWNLOAD_BYTES = 262_144_000
FETCH_TIMEOUT_S = 60.0
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class ArtifactError(Exception):
    """Code or layer content cannot be materialised; ``field`` is the manifest path."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}" if field else message)


@dataclass(frozen=True)
class Artifact:
    digest: str  # hex SHA-256 of the zip archive
    code_sha256: str  # base64 SHA-256 (Lambda's CodeSha256)
    size: int  # bytes of the zip archive
    path: str  # extracted directory


def inline_zip(files: Mapping[str, str]) -> bytes:
    """A deterministic zip of inline files (sorted, fixed timestamps). Files starting with
    '#!' and files named 'bootstrap' are executable."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(files):
            content = files[name]
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            executable = content.startswith("#!") or name.rsplit("/", 1)[-1] == "bootstrap"
            mode = 0o755 if executable else 0o644
            info.external_attr = (stat.S_IFREG | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, content.encode())
    return buf.getvalue()


def check_members(zf: zipfile.ZipFile, field: str) -> None:
    """Rejects zip-slip paths (absolute, '..', drive letters) and oversized archives."""
    total = 0
    for info in zf.infolist():
        name = info.filename.replace("\\", "/")
        parts = name.split("/")
        if name.startswith("/") or ".." in parts or (len(parts[0]) == 2 and parts[0][1] == ":"):
            raise ArtifactError(
                field,
                f'the archive contains the unsafe path "{info.filename}" (absolute or with '
                '".."); rebuild it with paths relative to the code root',
            )
        total += info.file_size
    if total > MAX_UNZIPPED_BYTES:
        raise ArtifactError(
            field,
            f"the archive unzips to {total} bytes; the maximum (code + layers) is "
            f"{MAX_UNZIPPED_BYTES}",
        )


def extract(data: bytes, dest: Path, *, field: str) -> None:
    """Extracts a zip (checked by :func:`check_members`), keeping executable bits."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise ArtifactError(field, "the content is not a valid zip archive") from None
    with zf:
        check_members(zf, field)
        for info in zf.infolist():
            target = dest / info.filename.replace("\\", "/")
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
            mode = (info.external_attr >> 16) & 0o777
            executable = bool(mode & 0o111)
            os.chmod(target, 0o755 if executable else 0o644)


def fetch(url: str, *, field: str, timeout: float = FETCH_TIMEOUT_S) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            data: bytes = resp.read(MAX_DOWNLOAD_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise ArtifactError(field, f"cannot fetch {url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ArtifactError(field, f"cannot fetch {url}: {reason}") from None
    if len(data) > MAX_DOWNLOAD_BYTES:
        raise ArtifactError(field, f"{url} is larger than {MAX_DOWNLOAD_BYTES} bytes")
    return data


class ArtifactStore:
    """Content-addressed artifacts under ``root`` (``<state>/artifacts``)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def materialize(self, code: Code | LayerContent, *, field: str) -> Artifact:
        """Code (or Layer content) -> an extracted, content-addressed directory.

        ``url`` sources are fetched only if no artifact with their sha256 exists yet.
        Raises ArtifactError naming ``field`` for anything a user must fix."""
        if code.inline is not None:
            return self._store(inline_zip(code.inline), field=f"{field}.inline")
        if code.zip_file is not None:
            data = base64.b64decode("".join(code.zip_file.split()))
            return self._store(data, field=f"{field}.zipFile")
        if code.url is not None:
            expected = code.url.sha256
            existing = self._existing(expected)
            if existing is not None:
                return existing
            data = fetch(code.url.location, field=f"{field}.url.location")
            actual = hashlib.sha256(data).hexdigest()
            if actual != expected:
                raise ArtifactError(
                    f"{field}.url.sha256",
                    f"checksum mismatch for {code.url.location}: the manifest says {expected} "
                    f"but the downloaded archive has {actual}; if the archive changed on "
                    "purpose, update sha256",
                )
            return self._store(data, field=f"{field}.url")
        if code.config_map_ref is not None:
            raise ArtifactError(
                f"{field}.configMapRef",
                "code from a ConfigMap is only available on Kubernetes; with `klambda up` use "
                "inline, zipFile or url",
            )
        if code.image is not None:
            raise ArtifactError(
                f"{field}.image",
                "container images run only on Kubernetes; with `klambda up` use inline, "
                "zipFile or url",
            )
        raise ArtifactError(field, "no code source is set")

    def _existing(self, digest: str) -> Artifact | None:
        path = self.root / digest
        meta = self.root / f"{digest}.size"
        if not path.is_dir() or not meta.exists():
            return None
        size = int(meta.read_text())
        return Artifact(digest, _b64(digest), size, str(path))

    def _store(self, data: bytes, *, field: str) -> Artifact:
        digest = hashlib.sha256(data).hexdigest()
        existing = self._existing(digest)
        if existing is not None:
            return existing
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.root))
        try:
            extract(data, tmp, field=field)
            self._publish_dir(tmp, self.root / digest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        (self.root / f"{digest}.size").write_text(str(len(data)))
        return Artifact(digest, _b64(digest), len(data), str(self.root / digest))

    def merge_layers(self, layers: Sequence[Artifact]) -> str:
        """The merged /opt of ``layers`` in order (later override earlier); "" if none."""
        if not layers:
            return ""
        key = hashlib.sha256("\n".join(a.digest for a in layers).encode()).hexdigest()
        dest = self.root / "opt" / key
        if dest.is_dir():
            return str(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=dest.parent))
        try:
            for layer in layers:
                shutil.copytree(layer.path, tmp, dirs_exist_ok=True)
            self._publish_dir(tmp, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return str(dest)

    def collect_garbage(self, *, digests: set[str], opt_keys: set[str],
                        temporary: bool = False) -> list[str]:
        """Removes the artifacts not in ``digests`` (with their ``.size`` files) and the merged
        /opt directories not in ``opt_keys``; with ``temporary`` also leftover ``.tmp-*``
        directories of an interrupted write (only safe while nothing materialises). Names
        that are not artifacts are left alone. Returns the removed paths."""
        removed: list[str] = []

        def remove(path: Path) -> None:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(str(path))

        for dirpath, keep in ((self.root, digests), (self.root / "opt", opt_keys)):
            if not dirpath.is_dir():
                continue
            for entry in sorted(dirpath.iterdir()):
                name = entry.name
                if temporary and name.startswith(".tmp-") or _HEX64.match(name) and name not in keep or (dirpath == self.root and name.endswith(".size")
                      and _HEX64.match(name[:-5]) and name[:-5] not in keep):
                    remove(entry)
        return removed

    @staticmethod
    def _publish_dir(tmp: Path, dest: Path) -> None:
        os.chmod(tmp, 0o755)
        try:
            os.rename(tmp, dest)
        except OSError:
            if not dest.is_dir():  # someone else won the race with identical content
                raise


def _b64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()
