"""Streamed content hashes, shared by weight checks, provenance and publishing.

Artifacts and weights can be gigabytes, so every hash reads in fixed chunks instead of loading
whole files.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import IO

_CHUNK = 1 << 20


def stream_hexdigest(handle: IO[bytes], algorithm: str) -> str:
    """Hex digest of everything left in `handle` ("md5" for DVC, "sha256" for S3)."""
    digest = hashlib.new(algorithm, usedforsecurity=False)
    for chunk in iter(lambda: handle.read(_CHUNK), b""):
        digest.update(chunk)
    return digest.hexdigest()


def file_hexdigest(path: Path, algorithm: str) -> str:
    with path.open("rb") as handle:
        return stream_hexdigest(handle, algorithm)
