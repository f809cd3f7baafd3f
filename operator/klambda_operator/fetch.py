"""Fetch code or layer archives: the init step of function pods, and the operator's check.

Run in an init container as::

    python -m klambda_operator.fetch [--url URL --sha256 HEX | --copy DIR]... --dest DIR

Sources are applied in order into ``--dest`` (later ones overwrite earlier files), so the
same program assembles ``/var/task`` from one archive and ``/opt`` from several layers.
A checksum mismatch exits with status 3 and a message saying which URL and both digests.
Standard library only (it runs in every function pod).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import sys
import urllib.request
import zipfile

MAX_ARCHIVE_BYTES = 512 * 1024 * 1024
EXIT_CHECKSUM = 3
EXIT_FETCH = 4


class FetchError(Exception):
    def __init__(self, message: str, *, code: int) -> None:
        super().__init__(message)
        self.code = code


def download(url: str, *, timeout: float = 30.0, limit: int = MAX_ARCHIVE_BYTES) -> bytes:
    """The bytes at ``url`` (bounded in size and time)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data: bytes = response.read(limit + 1)
    except OSError as exc:
        raise FetchError(
            f"cannot download {url}: {exc}; check that the URL is reachable from the cluster",
            code=EXIT_FETCH,
        ) from exc
    if len(data) > limit:
        raise FetchError(f"{url} is larger than {limit} bytes", code=EXIT_FETCH)
    return data


def check_sha256(data: bytes, *, url: str, expected: str) -> None:
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected.lower():
        raise FetchError(
            f"checksum mismatch for {url}: the archive's SHA-256 is {actual} but sha256 says "
            f"{expected.lower()}; update sha256 (sha256sum code.zip) or fix the URL",
            code=EXIT_CHECKSUM,
        )


def extract(data: bytes, dest: str) -> int:
    """Unzips into ``dest`` (refusing paths that escape it); returns the file count."""
    count = 0
    root = os.path.realpath(dest)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            target = os.path.realpath(os.path.join(root, info.filename))
            if not target.startswith(root + os.sep):
                raise FetchError(f"archive entry {info.filename!r} escapes {dest}", code=EXIT_FETCH)
            if info.is_dir():
                os.makedirs(target, exist_ok=True)
                continue
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with archive.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
            mode = (info.external_attr >> 16) & 0o777
            os.chmod(target, 0o555 if mode & 0o100 or info.filename == "bootstrap" else 0o444)
            count += 1
    return count


def copy_tree(src: str, dest: str) -> None:
    shutil.copytree(src, dest, dirs_exist_ok=True, symlinks=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m klambda_operator.fetch")
    parser.add_argument("--url", action="append", default=[])
    parser.add_argument("--sha256", action="append", default=[])
    parser.add_argument("--copy", action="append", default=[])
    parser.add_argument("--dest", required=True)
    args, _ = parser.parse_known_args(argv)
    # Keep the order of --url/--copy as given: walk argv again.
    steps: list[tuple[str, str, str]] = []
    raw = list(sys.argv[1:] if argv is None else argv)
    sha_iter = iter(args.sha256)
    for i, token in enumerate(raw):
        if token == "--url":
            steps.append(("url", raw[i + 1], next(sha_iter, "")))
        elif token == "--copy":
            steps.append(("copy", raw[i + 1], ""))
    os.makedirs(args.dest, exist_ok=True)
    try:
        for kind, source, sha in steps:
            if kind == "copy":
                copy_tree(source, args.dest)
                print(f"copied {source} -> {args.dest}", flush=True)
                continue
            data = download(source)
            check_sha256(data, url=source, expected=sha)
            n = extract(data, args.dest)
            print(f"fetched {source} ({len(data)} bytes, {n} files) -> {args.dest}", flush=True)
    except FetchError as exc:
        print(f"klambda fetch: {exc}", file=sys.stderr, flush=True)
        return exc.code
    except zipfile.BadZipFile as exc:
        print(f"klambda fetch: not a zip archive: {exc}", file=sys.stderr, flush=True)
        return EXIT_FETCH
    return 0


if __name__ == "__main__":
    sys.exit(main())
