"""conda-pack, the one packer of environments.

Triton's Python backend unpacks `EXECUTION_ENV_PATH` and sources its `bin/activate`; conda-pack
adds that script (and `conda-unpack`) to any prefix that has a `conda-meta/` folder, which is why
both builders end here whatever made the prefix.
"""

from __future__ import annotations

import os
from pathlib import Path


def pack_prefix(prefix: Path, archive: Path) -> None:
    """Write `prefix` as a relocatable tar.gz at `archive`, using every core."""
    import conda_pack

    conda_pack.pack(
        prefix=str(prefix),
        output=str(archive),
        format="tar.gz",
        n_threads=os.cpu_count() or 1,
        compress_level=4,
        verbose=False,
    )
