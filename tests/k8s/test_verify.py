"""UrlVerifier and the fetch init step against a real local HTTP server.

Covers: a verified (URL, sha256) is downloaded once per operator process; a mismatch raises
CodeChecksumMismatch naming both digests; an unreachable URL is CodeFetchFailed; the init
step (`python -m klambda_operator.fetch`) extracts in order, later sources overwrite, and
exits 3 on a checksum mismatch.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from klambda_operator.errors import ChecksumMismatch, FetchFailed
from klambda_operator.verify import UrlVerifier


def _zip(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return buf.getvalue()


@pytest.fixture
def server() -> Iterator[tuple[str, dict[str, bytes], list[str]]]:
    files: dict[str, bytes] = {}
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            data = files.get(self.path)
            if data is None:
                self.send_response(404)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", files, hits
    srv.shutdown()
    srv.server_close()


async def test_verified_once_and_mismatch_reported(
    server: tuple[str, dict[str, bytes], list[str]],
) -> None:
    base, files, hits = server
    files["/a.zip"] = _zip({"app.py": "x = 1\n"})
    good = hashlib.sha256(files["/a.zip"]).hexdigest()
    verifier = UrlVerifier()
    await verifier.verify(f"{base}/a.zip", good, field="spec.code")
    await verifier.verify(f"{base}/a.zip", good.upper(), field="spec.code")
    assert hits == ["/a.zip"]
    with pytest.raises(ChecksumMismatch) as err:
        await verifier.verify(f"{base}/a.zip", "0" * 64, field="spec.code")
    assert good in err.value.message and "update sha256" in err.value.message
    with pytest.raises(FetchFailed, match="reachable from the cluster"):
        await verifier.verify(f"{base}/missing.zip", good, field="spec.code")


def test_fetch_init_step(server: tuple[str, dict[str, bytes], list[str]], tmp_path: Path) -> None:
    base, files, _ = server
    files["/one.zip"] = _zip({"python/m.py": "A = 1\n", "keep.txt": "k"})
    files["/two.zip"] = _zip({"python/m.py": "A = 2\n"})
    copy_src = tmp_path / "cm"
    (copy_src / "python").mkdir(parents=True)
    (copy_src / "python" / "c.py").write_text("C = 1\n")
    dest = tmp_path / "opt"
    args = [
        "--copy",
        str(copy_src),
        "--url",
        f"{base}/one.zip",
        "--sha256",
        hashlib.sha256(files["/one.zip"]).hexdigest(),
        "--url",
        f"{base}/two.zip",
        "--sha256",
        hashlib.sha256(files["/two.zip"]).hexdigest(),
        "--dest",
        str(dest),
    ]
    res = subprocess.run(
        [sys.executable, "-m", "klambda_operator.fetch", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    assert (dest / "python" / "m.py").read_text() == "A = 2\n"
    assert (dest / "python" / "c.py").read_text() == "C = 1\n"
    assert (dest / "keep.txt").exists()
    bad = [*args[:2], "--url", f"{base}/one.zip", "--sha256", "f" * 64, "--dest", str(dest)]
    res = subprocess.run(
        [sys.executable, "-m", "klambda_operator.fetch", *bad],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 3 and "checksum mismatch" in res.stderr
