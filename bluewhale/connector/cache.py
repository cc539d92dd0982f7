"""A folder of converted data sets shared by runs, sweep jobs and ranks: one entry a content key, built
once under a file lock and published by atomic rename, capped in size with least-recently-used eviction.

Layout: `<root>/<key>/` (an entry: parquet parts and `_bluewhale.json`, its manifest),
`<root>/.locks/<key>.lock` and `<root>/.locks/<key>.build`. A process using an entry holds a shared lock
on `.lock`, so eviction and `clear` never delete data under a running reader; a builder holds `.build`.
Locks are `flock`s, so the root must be a local or POSIX-locking file system (NFS on Linux works);
readers can use any fsspec URL.

Command line: `python -m bluewhale.connector.cache [--root DIR] list|clear`.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bluewhale.atomic import publish_atomically

log = logging.getLogger(__name__)
MANIFEST = "_bluewhale.json"
DEFAULT_ROOT = "data/connector"  # the default config's `connector.cache_dir`, relative to the launch folder


class _Lock:
    """An open lock file; `flock` locks belong to it until `release` (or the process ends)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)

    def acquire(self, exclusive: bool, block: bool = True) -> bool:
        flags = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | (0 if block else fcntl.LOCK_NB)
        try:
            fcntl.flock(self.fd, flags)
            return True
        except BlockingIOError:
            return False

    def unlock(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the lock
            self.fd = None

    def __del__(self) -> None:
        self.release()


@dataclass
class Entry:
    """A complete cache entry, held with a shared lock (so it is not evicted) until `release`."""

    path: Path
    manifest: dict
    hit: bool
    lock: _Lock | None = None

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None


@dataclass
class EntryInfo:
    key: str
    path: Path
    bytes: int
    rows: int
    last_used: float
    in_use: bool


class Cache:
    """The cache folder `root`; entries above `max_bytes` in total are evicted, least recently used first."""

    def __init__(self, root: str | Path, max_bytes: int | None = None) -> None:
        root = str(root)
        if root.startswith("file://"):
            root = root[len("file://") :]
        elif "://" in root:
            raise ValueError(
                f"connector.cache_dir={root!r}: the cache needs a local or POSIX file system "
                "(it locks files and renames folders); readers accept any fsspec URL"
            )
        self.root = Path(root).absolute()
        self.max_bytes = max_bytes

    def _lock(self, key: str) -> _Lock:
        """The readers' lock of entry `key` (shared while in use; eviction takes it exclusively)."""
        return _Lock(self.root / ".locks" / f"{key}.lock")

    def _build_lock(self, key: str) -> _Lock:
        """The builders' lock of entry `key`: one builder at a time, the others wait for its build."""
        return _Lock(self.root / ".locks" / f"{key}.build")

    def _complete(self, key: str) -> dict | None:
        manifest = self.root / key / MANIFEST
        return json.loads(manifest.read_text()) if manifest.exists() else None

    def get_or_build(self, key: str, build: Callable[[Path], dict]) -> Entry:
        """The entry `key`, built by `build(folder) -> manifest` if no process has built it yet.

        Concurrent callers with the same key wait for the one builder and then share its entry. Waiting
        builders queue on the key's build lock, not on the readers' lock: a builder goes on to read its
        entry (a rank's loader holds it all run), and must not lock out the process that waited for it.
        """
        lock = self._lock(key)
        built = False
        while True:
            lock.acquire(exclusive=False)
            manifest = self._complete(key)
            if manifest is not None:
                break
            lock.unlock()  # while it is built elsewhere, a missing entry's readers hold nothing
            built = self._build(key, build) or built
        try:
            os.utime(self.root / key / MANIFEST)  # the last-used time that eviction orders by
        except PermissionError:  # a read-only cache is still readable
            pass
        entry = Entry(self.root / key, manifest, hit=not built, lock=lock)
        if built:
            self.evict(keep=key)
        return entry

    def _build(self, key: str, build: Callable[[Path], dict]) -> bool:
        """Build and publish entry `key` unless another builder did while this one waited its turn."""
        guard = self._build_lock(key)
        guard.acquire(exclusive=True)
        try:
            if self._complete(key) is not None:
                return False
            start = time.perf_counter()
            with publish_atomically(self.root / key) as tmp:
                manifest = build(tmp) | {"key": key, "created": time.time()}
                manifest["bytes"] = sum(f.stat().st_size for f in tmp.rglob("*") if f.is_file())
                (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
            log.info("connector cache: built %s in %.1f s", self.root / key, time.perf_counter() - start)
            return True
        finally:
            guard.release()

    def entries(self) -> list[EntryInfo]:
        """Complete entries, least recently used first."""
        found = []
        if not self.root.exists():
            return found
        for folder in self.root.iterdir():
            manifest = folder / MANIFEST
            if folder.name.startswith("."):
                continue
            try:
                meta, used = json.loads(manifest.read_text()), manifest.stat().st_mtime
            except FileNotFoundError:  # not a complete entry, or removed while we looked
                continue
            lock = self._lock(folder.name)
            in_use = not lock.acquire(exclusive=True, block=False)
            lock.release()
            found.append(EntryInfo(folder.name, folder, meta["bytes"], meta["rows"], used, in_use))
        return sorted(found, key=lambda e: e.last_used)

    def _remove(self, key: str) -> bool:
        """Delete entry `key` unless some process holds it; rename first so no one sees half of it."""
        lock = self._lock(key)
        try:
            if not lock.acquire(exclusive=True, block=False):
                return False
            trash = self.root / f".trash-{key}-{os.getpid()}"
            os.rename(self.root / key, trash)
            shutil.rmtree(trash, ignore_errors=True)
            return True
        finally:
            lock.release()

    def evict(self, keep: str | None = None) -> list[str]:
        """Remove least recently used entries (never `keep`, never one in use) until under `max_bytes`."""
        if self.max_bytes is None:
            return []
        guard = _Lock(self.root / ".locks" / ".evict")
        guard.acquire(exclusive=True)
        try:
            entries = self.entries()
            total = sum(e.bytes for e in entries)
            removed = []
            for e in entries:
                if total <= self.max_bytes:
                    break
                if e.key != keep and self._remove(e.key):
                    total -= e.bytes
                    removed.append(e.key)
            if removed:
                log.info("connector cache: evicted %s (cap %d bytes)", removed, self.max_bytes)
            if total > self.max_bytes:
                log.warning(
                    "connector cache %s holds %d bytes, over its cap of %d: the rest is in use",
                    self.root,
                    total,
                    self.max_bytes,
                )
            return removed
        finally:
            guard.release()

    def clear(self) -> tuple[list[str], list[str]]:
        """Remove every entry not in use, and leftovers of crashed builds; return (removed, in use)."""
        removed, busy = [], []
        for e in self.entries():
            (removed if self._remove(e.key) else busy).append(e.key)
        if self.root.exists():
            for leftover in self.root.glob(".trash-*"):
                shutil.rmtree(leftover, ignore_errors=True)
            for leftover in self.root.glob(".*.tmp-*"):  # a crashed build's folder (publish_atomically)
                lock = self._build_lock(leftover.name[1:].split(".tmp-")[0])
                if lock.acquire(exclusive=True, block=False):  # no builder is writing it now
                    shutil.rmtree(leftover, ignore_errors=True)
                lock.release()
        return removed, busy


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bluewhale.connector.cache", description=__doc__)
    parser.add_argument("--root", default=DEFAULT_ROOT, help=f"the cache folder (default: {DEFAULT_ROOT})")
    parser.add_argument("action", choices=["list", "clear"])
    args = parser.parse_args(argv)
    cache = Cache(args.root)
    if args.action == "list":
        entries = cache.entries()
        for e in entries:
            used = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.last_used))
            print(
                f"{e.key}  {e.rows:>12,d} rows  {_size(e.bytes):>10}  {used}{'  in use' if e.in_use else ''}"
            )
        print(f"{len(entries)} entries, {_size(sum(e.bytes for e in entries))} in {cache.root}")
    else:
        removed, busy = cache.clear()
        print(
            f"removed {len(removed)} entries from {cache.root}"
            + (f"; {len(busy)} in use kept" if busy else "")
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
