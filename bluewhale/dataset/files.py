"""Input identity for the processing cache, and where a data set's files are: checks that a configured
path is there and not empty, and the files a published archive unpacks to, found inside its folder."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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
    """Fail with the config key when a file the data set needs is missing or empty (a reader would
    otherwise stop inside its parser, e.g. pyarrow's bare "Empty CSV file")."""
    if not path.is_file():
        raise FileNotFoundError(f"{key}: {what} {path} not found")
    return require_nonempty(path, what, key)


def require_nonempty(path: Path, what: str, key: str = "dataset.path") -> Path:
    """Fail, naming the file, when it has no bytes at all (an interrupted download or copy)."""
    if path.stat().st_size == 0:
        raise ValueError(f"{key}: {what} {path} is empty (0 bytes); expected the published file's rows")
    return path


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


def find_file(path: Path, names: Sequence[str], what: str, key: str = "dataset.path") -> Path:
    """`path` itself when it is not a folder; in a folder, the first of `names` in it, or in its one
    subfolder (an archive that unpacks to a folder of its own, e.g. `ml-100k/`).

    A folder holding none of them is an error that names what was expected and what is there."""
    if not path.is_dir():
        return path
    subfolders = _subfolders(path)
    for folder in [path, *(subfolders if len(subfolders) == 1 else [])]:
        for name in names:
            if (folder / name).is_file():
                return folder / name
    there = sorted(p.name for p in path.iterdir())[:20]
    raise FileNotFoundError(
        f"{key}={path}: a folder without {what}; expected one of {list(names)} in it, found {there}"
    )


def find_folder(path: Path, marker: str) -> Path:
    """The folder holding `marker` (a file every copy of the data set has): `path` itself, the folder of
    `path` when it names a file, or `path`'s one subfolder that holds it. Unchanged when none does (the
    data set's own check then names each missing file; a synthetic twin writes them later)."""
    if path.is_file():
        return path.parent
    if path.is_dir() and not (path / marker).is_file():
        holding = [p for p in _subfolders(path) if (p / marker).is_file()]
        if len(holding) == 1:
            return holding[0]
    return path
