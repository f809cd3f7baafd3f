"""Checks code URLs against their sha256 at reconcile time, once per (URL, digest).

The Function's status then reports a checksum mismatch before any pod starts. A verified
pair is remembered for the life of the operator process (the periodic resync would otherwise
download every archive every 30 s); pods still check the archive themselves when they fetch it.
"""

from __future__ import annotations

import asyncio

from klambda_operator import fetch
from klambda_operator.errors import ChecksumMismatch, FetchFailed


class UrlVerifier:
    def __init__(self, *, timeout: float = 20.0, remember: int = 4096) -> None:
        self._timeout = timeout
        self._remember = remember
        self._verified: set[tuple[str, str]] = set()

    async def verify(self, location: str, sha256: str, *, field: str) -> None:
        key = (location, sha256.lower())
        if key in self._verified:
            return
        try:
            data = await asyncio.to_thread(fetch.download, location, timeout=self._timeout)
            fetch.check_sha256(data, url=location, expected=sha256)
        except fetch.FetchError as exc:
            cls = ChecksumMismatch if exc.code == fetch.EXIT_CHECKSUM else FetchFailed
            raise cls(f"{field}.url: {exc}") from exc
        if len(self._verified) >= self._remember:
            self._verified.clear()
        self._verified.add(key)
