"""Artifacts: deterministic inline zips with executable bits, zip-slip rejection, url sources
(file:// and a real http server) with the sha256 check and the cache, Kubernetes-only
sources failing clearly, layer merge order (later layers override earlier files)."""

from __future__ import annotations

import base64
import hashlib
import http.server
import io
import os
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from klambda_gateway.artifacts import ArtifactError, ArtifactStore, inline_zip
from klambda_model import Code, CodeUrl, ConfigMapRef


def make_zip(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    return buf.getvalue()


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "artifacts")


def test_inline_is_deterministic_and_content_addressed(store: ArtifactStore) -> None:
    files = {"b.py": "B = 1\n", "app.py": "def handler(e, c):\n    return 1\n"}
    assert inline_zip(files) == inline_zip(dict(reversed(list(files.items()))))
    art = store.materialize(Code(inline=files), field="spec.code")
    digest = hashlib.sha256(inline_zip(files)).hexdigest()
    assert art.digest == digest and Path(art.path).name == digest
    assert art.code_sha256 == base64.b64encode(bytes.fromhex(digest)).decode()
    assert (Path(art.path) / "app.py").read_text().startswith("def handler")
    again = store.materialize(Code(inline=files), field="spec.code")
    assert again == art


def test_bootstrap_and_shebang_files_are_executable(store: ArtifactStore) -> None:
    files = {"bootstrap": "#!/bin/sh\nexec python -m awslambdaric app.handler\n",
             "run.sh": "#!/bin/sh\n", "app.py": "x = 1\n"}
    art = store.materialize(Code(inline=files), field="spec.code")
    mode = {name: os.stat(Path(art.path) / name).st_mode & 0o777 for name in files}
    assert mode == {"bootstrap": 0o755, "run.sh": 0o755, "app.py": 0o644}


def test_zipfile_sha_matches_lambda_code_sha256(store: ArtifactStore) -> None:
    data = make_zip({"app.py": "x = 1\n", "lib/util.py": "y = 2\n"})
    art = store.materialize(Code(zip_file=base64.b64encode(data).decode()), field="spec.code")
    assert art.code_sha256 == base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert art.size == len(data)
    assert (Path(art.path) / "lib" / "util.py").read_text() == "y = 2\n"


@pytest.mark.parametrize("evil", ["../evil.py", "/etc/evil", "a/../../evil.py", "C:/evil"])
def test_zip_slip_is_rejected(store: ArtifactStore, tmp_path: Path, evil: str) -> None:
    data = make_zip({"app.py": "x", evil: "pwned"})
    with pytest.raises(ArtifactError) as info:
        store.materialize(Code(zip_file=base64.b64encode(data).decode()), field="spec.code")
    assert str(info.value) == (
        f'spec.code.zipFile: the archive contains the unsafe path "{evil}" (absolute or with '
        '".."); rebuild it with paths relative to the code root'
    )
    assert not (tmp_path / "evil.py").exists()
    assert [p.name for p in store.root.iterdir()] == []  # nothing half-written remains


def test_not_a_zip(store: ArtifactStore) -> None:
    with pytest.raises(ArtifactError, match="spec.code.zipFile: the content is not a valid zip"):
        store.materialize(Code(zip_file=base64.b64encode(b"PK garbage").decode()),
                          field="spec.code")


def test_file_url_checksum_and_cache(store: ArtifactStore, tmp_path: Path) -> None:
    data = make_zip({"app.py": "x = 1\n"})
    src = tmp_path / "code.zip"
    src.write_bytes(data)
    good = hashlib.sha256(data).hexdigest()
    bad = "0" * 64
    with pytest.raises(ArtifactError) as info:
        store.materialize(Code(url=CodeUrl(location=src.as_uri(), sha256=bad)), field="spec.code")
    assert str(info.value) == (
        f"spec.code.url.sha256: checksum mismatch for {src.as_uri()}: the manifest says {bad} "
        f"but the downloaded archive has {good}; if the archive changed on purpose, update sha256"
    )
    art = store.materialize(Code(url=CodeUrl(location=src.as_uri(), sha256=good)),
                            field="spec.code")
    assert art.digest == good
    src.unlink()  # cached by sha256: no second fetch
    assert store.materialize(Code(url=CodeUrl(location=src.as_uri(), sha256=good)),
                             field="spec.code") == art


def test_unreachable_url(store: ArtifactStore, tmp_path: Path) -> None:
    missing = (tmp_path / "nope.zip").as_uri()
    with pytest.raises(ArtifactError, match=r"spec.code.url.location: cannot fetch file://"):
        store.materialize(Code(url=CodeUrl(location=missing, sha256="1" * 64)), field="spec.code")


@pytest.fixture
def http_dir(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: object, **kw: object) -> None:
            super().__init__(*a, directory=str(root), **kw)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_http_url(store: ArtifactStore, http_dir: tuple[str, Path]) -> None:
    base, root = http_dir
    data = make_zip({"app.py": "x = 1\n"})
    (root / "code.zip").write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    art = store.materialize(Code(url=CodeUrl(location=f"{base}/code.zip", sha256=sha)),
                            field="spec.content")
    assert (Path(art.path) / "app.py").exists()
    with pytest.raises(ArtifactError, match=r"spec.content.url.location: cannot fetch .*404"):
        store.materialize(Code(url=CodeUrl(location=f"{base}/missing.zip", sha256="2" * 64)),
                          field="spec.content")


def test_kubernetes_only_sources(store: ArtifactStore) -> None:
    with pytest.raises(ArtifactError) as info:
        store.materialize(Code(config_map_ref=ConfigMapRef(name="code")), field="spec.code")
    assert str(info.value) == (
        "spec.code.configMapRef: code from a ConfigMap is only available on Kubernetes; with "
        "`klambda up` use inline, zipFile or url"
    )
    with pytest.raises(ArtifactError) as info:
        store.materialize(Code(image="ghcr.io/x/y:1"), field="spec.code")
    assert str(info.value) == (
        "spec.code.image: container images run only on Kubernetes; with `klambda up` use inline, "
        "zipFile or url"
    )


def test_layers_merge_in_order(store: ArtifactStore) -> None:
    first = store.materialize(
        Code(inline={"python/shared.py": "WHO = 'first'\n", "python/only1.py": ""}), field="a"
    )
    second = store.materialize(
        Code(inline={"python/shared.py": "WHO = 'second'\n", "bin/tool": "#!/bin/sh\n"}),
        field="b",
    )
    merged = Path(store.merge_layers([first, second]))
    assert (merged / "python" / "shared.py").read_text() == "WHO = 'second'\n"
    assert (merged / "python" / "only1.py").exists()
    assert os.access(merged / "bin" / "tool", os.X_OK)
    reverse = Path(store.merge_layers([second, first]))
    assert reverse != merged
    assert (reverse / "python" / "shared.py").read_text() == "WHO = 'first'\n"
    assert store.merge_layers([first, second]) == str(merged)  # content-addressed, reused
    assert store.merge_layers([]) == ""
