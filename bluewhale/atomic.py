"""Write a folder or a file completely or not at all: build it under a temporary name, then rename it into place."""

from __future__ import annotations

import json
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


def write_json_atomically(path: str | Path, data: dict) -> None:
    """Write `data` as indented JSON to `path` through a temporary file renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=float) + "\n")
    tmp.replace(path)
