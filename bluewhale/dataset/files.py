"""Input identity for the processing cache, and checks that a configured path is there."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def fingerprint_files(paths: Iterable[Path]) -> dict:
    """Path, size and mtime of every input file: any change to any of them changes the cache key."""
    files = []
    for path in paths:
        stat = path.stat()
        files.append({"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns})
    return {"files": files}


def require_path(path: str | Path | None, example: str) -> Path:
    """`dataset.path` as a Path, or a message that says what to point it at."""
    if not path:
        raise ValueError(f"dataset.path is not set: point it at {example}")
    return Path(path).expanduser()


def require_file(path: Path, what: str, key: str = "dataset.path") -> Path:
    """Fail with the config key when a file the data set needs is missing."""
    if not path.is_file():
        raise FileNotFoundError(f"{key}: {what} {path} not found")
    return path
