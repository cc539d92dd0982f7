"""Write a folder completely or not at all: build it under a temporary name, then rename it into place."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def publish_atomically(target: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside `target`; on success rename it to `target`.

    On error the temporary folder is removed, so readers never see a half-written `target`. If another
    process published `target` first, its copy wins and ours is discarded (both hold the same content).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the published folder is shared like any other
    try:
        yield tmp
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
