"""How much an artifact may unpack to, and how many members it may hold: the one owner of those
limits, for `publish` (which checks an artifact before it becomes permanent) and for anything
that unpacks one (the local endpoint).

Why limits at all: a gzip of zeros expands about 1,000-fold, so a 4 MB file can unpack to 4 GB,
and a tar of tiny members can hold hundreds of thousands of them. Without a bound the check (and
any unpack) runs for minutes and fills a disk. Real artifacts are far from both bounds: the
Python environment is one member, packed model files compress a few times at most.

Each limit has a default here and an environment variable that overrides it (for a genuinely
huge model, say); a value that is not a positive whole number is an error naming the variable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from mmepack.errors import MmepackError

# Absolute ceiling on the bytes the tar inside the gzip may hold (headers and padding included).
DEFAULT_MAX_UNPACKED_BYTES = 32 * 1024**3
# Unpacked bytes may be at most this many times the artifact's file size, plus
# DEFAULT_EXPANSION_SLACK: a gzip bomb expands ~1,000-fold, real artifacts a few times.
DEFAULT_MAX_EXPANSION_RATIO = 100
# Small artifacts (a config and a model.py) are mostly tar headers and padding, which compress
# very well; this much unpacked data is always allowed whatever the ratio.
DEFAULT_EXPANSION_SLACK = 64 * 1024**2
# Tar members (files and folders) in one artifact; mmepack's own hold a few dozen.
DEFAULT_MAX_MEMBERS = 50_000

UNPACKED_VARIABLE = "MMEPACK_MAX_UNPACKED_BYTES"
RATIO_VARIABLE = "MMEPACK_MAX_EXPANSION_RATIO"
MEMBERS_VARIABLE = "MMEPACK_MAX_MEMBERS"


@dataclass(frozen=True)
class ArtifactLimits:
    """Bounds on one artifact's unpacked size and member count (see the module's doc)."""

    max_unpacked_bytes: int = DEFAULT_MAX_UNPACKED_BYTES
    max_expansion_ratio: int = DEFAULT_MAX_EXPANSION_RATIO
    max_members: int = DEFAULT_MAX_MEMBERS

    def unpacked_limit(self, compressed_size: int | None) -> int:
        """The most bytes a file of `compressed_size` bytes may unpack to (None: unknown)."""
        if compressed_size is None:
            return self.max_unpacked_bytes
        by_ratio = compressed_size * self.max_expansion_ratio + DEFAULT_EXPANSION_SLACK
        return min(self.max_unpacked_bytes, by_ratio)

    @staticmethod
    def from_environment() -> ArtifactLimits:
        """The defaults above, each overridden by its MMEPACK_MAX_* variable when set."""
        return ArtifactLimits(
            _positive(UNPACKED_VARIABLE, DEFAULT_MAX_UNPACKED_BYTES),
            _positive(RATIO_VARIABLE, DEFAULT_MAX_EXPANSION_RATIO),
            _positive(MEMBERS_VARIABLE, DEFAULT_MAX_MEMBERS),
        )


def _positive(variable: str, default: int) -> int:
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) <= 0 or len(raw) > 20:
        raise MmepackError(
            f"${variable} is {raw!r}; expected a positive whole number (the default is "
            f"{default}); unset it to use the default"
        )
    return int(raw)
